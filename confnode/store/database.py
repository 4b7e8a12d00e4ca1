"""Opening the store and bringing its schema up to date.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``: a booking answered 201 has
been committed to the write-ahead log and survives ``kill -9`` of the node (and a power cut).
PostgreSQL is used as given by the URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

_MIGRATIONS = Path(__file__).with_name("migrations")


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


class Database:
    """The engine, with this process's writers taking turns on SQLite.

    SQLite has one writer at a time. When two pooled connections of this process both write, the
    loser waits in SQLite's busy handler, which sleeps in steps of up to 100 ms: under booking
    load that alone put p99 near a second. Queueing our own writers on an asyncio lock costs
    nothing (they would be serialised anyway) and leaves readers free, since WAL readers never
    wait for the writer. Other processes (a second CLI, a backup) still meet ``busy_timeout``.
    PostgreSQL takes row locks itself and gets no lock here.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @property
    def dialect(self) -> Dialect:
        return self.engine.dialect

    def connect(self) -> Any:
        """A connection for reads (autobegin; nothing is committed)."""
        return self.engine.connect()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on success and rolls back on error."""
        if self._writer is None:
            async with self.engine.begin() as connection:
                yield connection
            return
        async with self._writer, self.engine.begin() as connection:
            yield connection


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending Alembic migration (idempotent; runs on every node start)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
