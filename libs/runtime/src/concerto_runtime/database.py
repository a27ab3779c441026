"""One async SQLAlchemy engine per service: SQLite under .data/ by default, any URL otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def create_engine(url: str, *, one_connection: bool = False) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True)
    # one_connection: a pool of one, so writers queue for it in asyncio, never in SQLite's
    # busy handler (see open_database).
    pool = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 120} if one_connection else {}
    engine = create_async_engine(url, connect_args={"timeout": 30}, **pool)

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # WAL lets readers run beside the writer; SQLAlchemy, not the driver, opens transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Under WAL, NORMAL syncs at checkpoints rather than at every commit: a commit still
        # survives the process crashing; only an OS crash or power cut can undo the last few
        # (ADR 8). PostgreSQL, in production, has its own settings.
        cursor.execute("PRAGMA synchronous=NORMAL")
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


@dataclass
class Database:
    """A service's database: `sessions` for transactions that write, `read_sessions` for
    queries that only read (they never wait for a writer), `engine` for the rest."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]
    _writer: AsyncEngine

    async def dispose(self) -> None:
        await self._writer.dispose()
        await self.engine.dispose()


def open_database(url: str) -> Database:
    engine = create_engine(url)
    # SQLite takes one writer at a time. Giving a process's writers a single connection makes
    # them take turns there, so none of them waits inside SQLite, where a wait can stall the
    # event loop and, with it, the very transaction it is waiting for.
    writer = create_engine(url, one_connection=True) if url.startswith("sqlite") else engine
    return Database(engine, create_sessions(writer), create_sessions(engine, read_only=True), writer)


async def create_tables(engine: AsyncEngine, *metadatas: MetaData) -> None:
    # Tables are created at start-up; see docs/decisions for why there are no migrations yet.
    async with engine.begin() as connection:
        for metadata in metadatas:
            await connection.run_sync(metadata.create_all)


class UtcDateTime(TypeDecorator):
    """A timestamp that comes back as it went in: aware, in UTC, on SQLite as on PostgreSQL
    (SQLite keeps no time zone, so a plain DateTime(timezone=True) comes back naive there)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
