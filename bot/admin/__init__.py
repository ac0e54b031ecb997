"""The staff console at /admin: server-rendered pages for city staff (Japanese first).

Built by `bot.admin.app.build_console` and mounted by `bot.web.create_app`.
"""
