"""One async SQLAlchemy engine per service: SQLite under .data/ by default, any URL otherwise."""

from __future__ import annotations

from sqlalchemy import MetaData, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def create_engine(url: str) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # WAL lets readers run beside the writer; SQLAlchemy, not the driver, opens transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediate(connection) -> None:
        # Take the write lock up front: a deferred transaction that upgrades to a write can
        # fail at once with SQLITE_BUSY instead of waiting its turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def create_tables(engine: AsyncEngine, *metadatas: MetaData) -> None:
    # Tables are created at start-up; see docs/decisions for why there are no migrations yet.
    async with engine.begin() as connection:
        for metadata in metadatas:
            await connection.run_sync(metadata.create_all)
