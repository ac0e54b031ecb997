"""The channel tests' fixtures (fake platform, app with its lifespan) for the reliability tests."""

from tests.channels.conftest import fake, faq_probe, platform_app, platform_app_any_db, sqlite_url

__all__ = ["fake", "faq_probe", "platform_app", "platform_app_any_db", "sqlite_url"]
