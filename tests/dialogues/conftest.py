"""The dialogues run on the platform fakes of tests/channels."""

from tests.channels.conftest import fake, sqlite_url

__all__ = ["fake", "sqlite_url"]
