"""iju-bot: the migration office's chatbot (web chat, LINE, Telegram, console)."""
