"""Conversation capabilities, one module each, tried in the order of intents.registry."""
