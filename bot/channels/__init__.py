"""Adapters between a platform (LINE, Telegram, web chat, terminal) and the neutral engine."""
