"""Persistence: database engine set-up, models, migrations and small query functions."""
