"""statement_cost.py measures what it says: a row per layer, CPU per call, and thread hops
counted on the real aiosqlite connection (none for sqlite3 in the calling thread)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


SCRIPT = Path(__file__).resolve().parents[1] / "statement_cost.py"


def load_script():
    spec = importlib.util.spec_from_file_location("statement_cost", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_each_layer_is_measured_with_its_thread_hops(tmp_path):
    statement_cost = load_script()
    rows = {what: (ms, hops) for what, ms, hops in await statement_cost.measure(tmp_path / "cost.db", 20)}

    assert len(rows) == 7
    assert all(ms > 0 for ms, _ in rows.values())
    in_thread = next(hops for what, (_, hops) in rows.items() if "calling thread" in what)
    assert in_thread == 0
    through_sqlalchemy = [hops for what, (_, hops) in rows.items() if what.startswith("read:") and ("session" in what or "Core" in what)]
    aiosqlite_alone = next(hops for what, (_, hops) in rows.items() if "aiosqlite alone" in what)
    assert all(hops > aiosqlite_alone > 0 for hops in through_sqlalchemy)
    assert all(hops > max(through_sqlalchemy) for what, (_, hops) in rows.items() if what.startswith("write transaction"))
    assert "| thread hops per call |" in statement_cost.table(list((w, m, h) for w, (m, h) in rows.items())).splitlines()[0]
