"""One async SQLAlchemy engine per service: SQLite under .data/ by default, any URL otherwise
(PostgreSQL through asyncpg, which needs no thread)."""

from __future__ import annotations

import sqlite3
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import aiosqlite
from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def async_url(url: str) -> str:
    """The URL with an async driver: a plain postgresql:// one goes through asyncpg."""
    scheme, separator, rest = url.partition("://")
    return f"postgresql+asyncpg://{rest}" if separator and scheme in ("postgresql", "postgres") else url


def create_engine(url: str, *, one_connection: bool = False) -> AsyncEngine:
    url = async_url(url)
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True)
    # one_connection: a pool of one, so writers queue for it in asyncio, never in SQLite's
    # busy handler (see open_database).
    pool = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 120} if one_connection else {}
    driver = {"module": ONE_HOP_AIOSQLITE} if make_url(url).get_driver_name() == "aiosqlite" else {}
    engine = create_async_engine(url, connect_args={"timeout": 30}, **pool, **driver)

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
        begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"
        driver = connection.connection.dbapi_connection
        if isinstance(driver, _OneHopConnection):
            driver.begin_with_next_statement(begin)  # in the same hop as the first statement
        else:
            connection.exec_driver_sql(begin)

    return engine


def _statement_in_thread(driver: aiosqlite.Connection, begin: str | None, operation: str, parameters: Any, many: bool):
    """Runs in aiosqlite's thread: the transaction's BEGIN if it is the first statement, the
    statement, its rows fetched and its cursor closed."""
    cursor = driver._conn.cursor()
    try:
        if begin:
            cursor.execute(begin)
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        return description, cursor.fetchall() if description else [], cursor.lastrowid, cursor.rowcount
    finally:
        cursor.close()


class _OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A statement in one hop to aiosqlite's thread. SQLAlchemy's own adapter makes four (open
    a cursor, execute, fetch, close), and each hop is a queue put, a thread wake-up and a wake-up
    of the event loop (docs/benchmarks.md, "Where the database CPU goes")."""

    __slots__ = ()

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._run(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        self._run(operation, seq_of_parameters, many=True)

    def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        begin = self._adapt_connection.take_begin()
        try:
            description, rows, lastrowid, rowcount = self.await_(
                self._connection._execute(_statement_in_thread, self._connection, begin, operation, parameters, many)
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)  # raises it as SQLAlchemy expects
        self.description, self._rows = description, deque(rows)
        # As SQLAlchemy's adapter reports them: no row count for a statement that returns rows.
        self.lastrowid, self.rowcount = (-1, -1) if description else (lastrowid, rowcount)


class _OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_begin",)

    def __init__(self, dbapi: Any, connection: aiosqlite.Connection) -> None:
        super().__init__(dbapi, connection)
        self._begin: str | None = None

    def begin_with_next_statement(self, begin: str) -> None:
        """The transaction's BEGIN goes with its first statement, in the same hop (a transaction
        with no statement, committed or rolled back, never sends it: there is nothing to end)."""
        self._begin = begin

    def take_begin(self) -> str | None:
        begin, self._begin = self._begin, None
        return begin

    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        if server_side:
            self._send_begin()
            return super().cursor(server_side)
        return _OneHopCursor(self)

    def commit(self) -> None:
        self._begin = None
        super().commit()

    def rollback(self) -> None:
        self._begin = None
        # The pool rolls back every connection it takes back, after a commit too: with no
        # transaction open (sqlite3 reads that without a thread check) there is nothing to do.
        driver = self._connection._connection
        if driver is not None and not driver.in_transaction:
            return
        super().rollback()

    def _send_begin(self) -> None:
        begin = self.take_begin()
        if begin:
            _OneHopCursor(self).execute(begin)


class _OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = super().connect(*arg, **kw)
        if type(connection) is AsyncAdapt_aiosqlite_connection:  # not the test-only sync fallback
            return _OneHopConnection(self, connection._connection)
        return connection


# The DBAPI module SQLite engines use: aiosqlite, one hop per statement.
ONE_HOP_AIOSQLITE = _OneHopDBAPI(aiosqlite, sqlite3)


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
