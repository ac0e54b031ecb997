"""The channel tests' fake platform, for the ops tests that drive real webhooks."""

from tests.channels.conftest import fake, sqlite_url

__all__ = ["fake", "sqlite_url"]
