"""The dev server's SQLite runs as ADR 8 says: in WAL mode (the `--sqlite-pragma` flags reached
SQLite, which ignores a pragma it does not know without a word)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

STACK_DATA_DIR = os.environ.get("STACK_DATA_DIR")


@pytest.mark.skipif(not STACK_DATA_DIR, reason="STACK_DATA_DIR is not set: the stack's files are not known (make test sets it)")
def test_temporal_keeps_its_history_in_a_write_ahead_log():
    database = Path(STACK_DATA_DIR, "temporal", "temporal.db")
    assert database.exists(), f"no Temporal database at {database}"
    assert database.with_name("temporal.db-wal").exists(), "Temporal's SQLite has no write-ahead log: --sqlite-pragma journal_mode=WAL did not take"
    # journal_mode=WAL is stored in the database file itself, so any connection reads it back.
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
