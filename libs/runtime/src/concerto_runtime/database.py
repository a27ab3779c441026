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
    def _begin(connection) -> None:
        # A transaction that may write takes the write lock up front: a deferred one that
        # upgrades to a write can fail at once with SQLITE_BUSY instead of waiting its turn.
        # A read-only one must not queue behind writers: under WAL it reads a snapshot.
        read_only = connection.get_execution_options().get("read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def create_sessions(engine: AsyncEngine, *, read_only: bool = False) -> async_sessionmaker[AsyncSession]:
    """Sessions for work that writes, or (read_only=True) for queries that only read."""
    bind = engine.execution_options(read_only=True) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False)


async def create_tables(engine: AsyncEngine, *metadatas: MetaData) -> None:
    # Tables are created at start-up; see docs/decisions for why there are no migrations yet.
    async with engine.begin() as connection:
        for metadata in metadatas:
            await connection.run_sync(metadata.create_all)
