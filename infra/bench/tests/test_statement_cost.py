"""statement_cost.py measures what it says: a row per layer, CPU per call, and thread hops
counted on the real aiosqlite connection (none for sqlite3 in the calling thread)."""

from __future__ import annotations

from pathlib import Path

from concerto_runtime.testing import load_module


SCRIPT = Path(__file__).resolve().parents[1] / "statement_cost.py"


def load_script():
    return load_module("statement_cost", SCRIPT)


async def test_each_layer_is_measured_with_its_thread_hops(tmp_path):
    statement_cost = load_script()
    rows = {what: (ms, hops) for what, ms, hops in await statement_cost.measure(tmp_path / "cost.db", 20)}

    assert len(rows) == 7
    assert all(ms > 0 for ms, _ in rows.values())
    in_thread = next(hops for what, (_, hops) in rows.items() if "calling thread" in what)
    assert in_thread == 0
    through_sqlalchemy = [hops for what, (_, hops) in rows.items() if what.startswith("read:") and ("session" in what or "Core" in what)]
    aiosqlite_alone = next(hops for what, (_, hops) in rows.items() if "aiosqlite alone" in what)
    # One hop per statement through SQLAlchemy (issue 19, lever 3: concerto_runtime.database's
    # connection sends a statement and its fetch to the thread at once), fewer than aiosqlite's
    # own execute-then-fetch.
    assert all(hops == 1 for hops in through_sqlalchemy) and aiosqlite_alone >= 1
    assert all(hops > max(through_sqlalchemy) for what, (_, hops) in rows.items() if what.startswith("write transaction"))
    assert "| thread hops per call |" in statement_cost.table(list((w, m, h) for w, (m, h) in rows.items())).splitlines()[0]
