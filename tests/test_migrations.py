"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from bot.runtime import Runtime
from bot.storage import migrate
from bot.storage.models import Base


async def test_migrated_schema_matches_the_models(runtime: Runtime) -> None:
    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        return list(compare_metadata(context, Base.metadata))

    async with runtime.db.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await migrate.is_current(runtime.db)
