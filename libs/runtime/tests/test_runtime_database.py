"""A service's SQLite engine reaches aiosqlite's thread once per statement (SQLAlchemy's own
adapter goes four times: cursor, execute, fetch, close), sends a transaction's BEGIN with its
first statement, and does not go at all for the pool's rollback of a connection with no
transaction open; everything else behaves as the stock driver does."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, exc, insert, select, text, update

from concerto_runtime.database import async_url, create_engine, create_sessions, create_tables, open_database

tables = MetaData()
items = Table("items", tables, Column("id", Integer, primary_key=True, autoincrement=True), Column("name", String(20), unique=True))


class Hops:
    """Counts the calls the engine's one connection hands to aiosqlite's thread."""

    def __init__(self) -> None:
        self.count = 0

    async def watch(self, engine) -> None:
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
        handed_over = driver._execute

        async def counted(*args, **kwargs):
            self.count += 1
            return await handed_over(*args, **kwargs)

        driver._execute = counted


@pytest.fixture
async def writer(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one-hop.db'}", one_connection=True)
    await create_tables(engine, tables)
    yield engine
    await engine.dispose()


async def test_database_a_write_transaction_is_one_hop_per_statement_and_none_for_the_pool(writer):
    hops, sessions = Hops(), create_sessions(writer)
    await hops.watch(writer)

    async with sessions() as session, session.begin():
        await session.execute(insert(items).values(name="baton"))
    assert hops.count == 2  # BEGIN IMMEDIATE with the insert, then COMMIT; the pool's rollback is skipped

    hops.count = 0
    async with sessions() as session:
        assert await session.scalar(select(items.c.name).where(items.c.id == bindparam("id")), {"id": 1}) == "baton"
    assert hops.count == 2  # BEGIN IMMEDIATE with the select, then the rollback of the open transaction


async def test_database_a_writer_holds_the_write_lock_from_its_first_statement_and_a_reader_never_takes_it(tmp_path):
    path = tmp_path / "locks.db"
    database = open_database(f"sqlite+aiosqlite:///{path}")
    await create_tables(database.engine, tables)

    def another_writer_can_write() -> bool:
        with sqlite3.connect(path, timeout=0, isolation_level=None) as other:
            try:
                other.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # database is locked
                return False
            other.execute("ROLLBACK")
            return True

    try:
        async with database.sessions() as session, session.begin():
            await session.execute(select(items.c.id))  # only reads, but in a transaction that may write
            assert not another_writer_can_write()
        assert another_writer_can_write()
        async with database.read_sessions() as session:
            await session.execute(select(items.c.id))
            assert another_writer_can_write()
    finally:
        await database.dispose()


async def test_database_results_row_counts_and_errors_are_the_stock_drivers(writer):
    sessions = create_sessions(writer)
    async with sessions() as session, session.begin():
        inserted = await session.execute(insert(items), [{"name": "a"}, {"name": "b"}, {"name": "c"}])  # executemany
        assert inserted.rowcount == 3
        changed = await session.execute(update(items).where(items.c.name.in_(["a", "b"])).values(name=items.c.name + "!"))
        assert changed.rowcount == 2
        returned = await session.execute(update(items).where(items.c.name == "c").values(name="c!").returning(items.c.id))
        assert returned.scalars().all() == [3]
        assert (await session.execute(text("SELECT name FROM items ORDER BY id"))).scalars().all() == ["a!", "b!", "c!"]
    with pytest.raises(exc.IntegrityError):
        async with sessions() as session, session.begin():
            await session.execute(insert(items).values(name="a!"))


async def test_database_a_transaction_left_without_commit_is_rolled_back(writer):
    sessions = create_sessions(writer)
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            await session.execute(insert(items).values(name="lost"))
            raise RuntimeError("the unit of work fails")
    async with sessions() as session:
        await session.execute(insert(items).values(name="not committed"))  # closed without commit
    async with sessions() as session:
        assert (await session.execute(select(items.c.name))).all() == []


async def test_database_readers_see_what_the_writer_committed(tmp_path):
    database = open_database(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    await create_tables(database.engine, tables)
    try:
        async with database.sessions() as session, session.begin():
            await session.execute(insert(items).values(name="committed"))
        async with database.read_sessions() as session:
            assert (await session.execute(select(items.c.name))).scalars().all() == ["committed"]
    finally:
        await database.dispose()


def test_database_a_plain_postgresql_url_goes_through_asyncpg():
    assert async_url("postgresql://u:p@db/concerto_order") == "postgresql+asyncpg://u:p@db/concerto_order"
    assert async_url("postgres://u@db/x") == "postgresql+asyncpg://u@db/x"
    assert async_url("postgresql+asyncpg://u@db/x") == "postgresql+asyncpg://u@db/x"
    assert async_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"
