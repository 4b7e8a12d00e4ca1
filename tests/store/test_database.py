"""The store's writers take turns on SQLite instead of meeting in SQLite's busy handler."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from confnode.store.database import Database


async def _engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    # timeout=0: a writer that finds the database locked fails at once instead of sleeping,
    # which makes a collision between two of our own writers visible.
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
                                 connect_args={"timeout": 0})
    async with engine.begin() as conn:
        await conn.execute(text("PRAGMA journal_mode=WAL"))
        await conn.execute(text("CREATE TABLE t (n INTEGER)"))
    return engine


async def _slow_write(begin, n: int) -> None:  # type: ignore[no-untyped-def]
    async with begin() as conn:
        await conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
        await asyncio.sleep(0.05)  # hold the write transaction open across an await


async def test_concurrent_writers_collide_on_a_bare_engine(tmp_path: Path) -> None:
    """The control: without the lock, two writers in one process meet SQLite's lock."""
    engine = await _engine(tmp_path)
    try:
        with pytest.raises(OperationalError, match="locked"):
            await asyncio.gather(*(_slow_write(engine.begin, n) for n in range(2)))
    finally:
        await engine.dispose()


async def test_concurrent_writers_take_turns(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    database = Database(engine)
    try:
        await asyncio.gather(*(_slow_write(database.begin, n) for n in range(5)))
        async with database.connect() as conn:
            rows = (await conn.execute(text("SELECT n FROM t ORDER BY n"))).scalars().all()
        assert rows == [0, 1, 2, 3, 4]
    finally:
        await engine.dispose()


async def test_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    database = Database(engine)
    try:
        async with database.begin() as writer:
            await writer.execute(text("INSERT INTO t VALUES (1)"))
            async with database.connect() as reader:  # WAL: sees the last commit, not blocked
                count = (await reader.execute(text("SELECT count(*) FROM t"))).scalar_one()
            assert count == 0
    finally:
        await engine.dispose()


async def test_a_failed_write_rolls_back_and_frees_the_turn(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    database = Database(engine)
    try:
        with pytest.raises(RuntimeError):
            async with database.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (1)"))
                raise RuntimeError("handler failed")
        await asyncio.wait_for(_slow_write(database.begin, 2), timeout=5)
        async with database.connect() as conn:
            rows = (await conn.execute(text("SELECT n FROM t"))).scalars().all()
        assert rows == [2]
    finally:
        await engine.dispose()
