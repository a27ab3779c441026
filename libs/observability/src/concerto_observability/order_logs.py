"""One order's log lines, every component's, merged by time (ADR 18).

Each process of the local stack writes JSON lines to its own file (`.data/logs/<component>.log`,
concerto_observability.logs), stamped with the order id, correlation id and trace id of the work
in hand. An order's lines are those that name the order, and those that carry its correlation id
or its trace id without naming it (a call on the order's behalf, before its id was bound).
Lines that are not JSON (a component's own output, a traceback's tail) are left out.

    .venv/bin/python -m concerto_observability.order_logs ORDER_ID [--logs .data/logs]   # make logs ORDER=...
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from collections.abc import Iterator
from pathlib import Path

# Fields every line of ours has, printed in this order; the rest follow as they come.
FIRST = ("time", "service", "level", "logger", "message")


def _records(path: Path, needles: tuple[str, ...]) -> Iterator[dict]:
    """The JSON records of `path` whose raw line holds one of `needles` (a cheap test, before parsing)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if any(needle in line for needle in needles):
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict):
                        yield record
    except OSError:
        return


def order_lines(logs: Path, order_id: str, *, limit: int = 2000) -> list[dict]:
    """The order's lines from every `*.log` in `logs`, the earliest first, each with `component`
    (the file it came from); at most `limit`, the latest ones if there are more."""
    files = sorted(logs.glob("*.log"))
    # First the lines that name the order, for its correlation and trace ids; then every line
    # that carries one of them.
    correlation_ids, trace_ids = set(), set()
    for path in files:
        for record in _records(path, (order_id,)):
            if record.get("order_id") == order_id:
                correlation_ids.add(record.get("correlation_id"))
                trace_ids.add(record.get("trace_id"))
    correlation_ids.discard(None)
    trace_ids.discard(None)
    needles = (order_id, *correlation_ids, *trace_ids)

    def belongs(record: dict) -> bool:
        if record.get("order_id") is not None:
            return record["order_id"] == order_id
        return record.get("correlation_id") in correlation_ids or record.get("trace_id") in trace_ids

    def of(path: Path) -> Iterator[tuple[str, int, dict]]:
        for n, record in enumerate(_records(path, needles)):
            if belongs(record):
                yield str(record.get("time", "")), n, {"component": path.stem, **record}

    # Each file is in time order already: merge them. The stamps are one clock's, one format's
    # ("2026-01-31 12:00:00,123"), so they sort as text.
    merged = [record for _, _, record in heapq.merge(*(of(path) for path in files), key=lambda item: item[:2])]
    return merged[-limit:]


def format_line(record: dict) -> str:
    # Temporal's activity logger puts the activity's details into the message already.
    extra = {
        key: value for key, value in record.items()
        if key not in (*FIRST, "component", "order_id") and not key.startswith("temporal_") and value is not None
    }
    head = f"{record.get('time', '?')}  {record.get('component', '?'):<12} {record.get('level', ''):<7} {record.get('message', '')}"
    return head + (f"  {json.dumps(extra, default=str)}" if extra else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One order's log lines from every component of the local stack, merged by time.")
    parser.add_argument("order_id")
    parser.add_argument("--logs", type=Path, default=Path(".data/logs"), help="the stack's log directory (default: .data/logs)")
    parser.add_argument("--json", action="store_true", help="one JSON object a line, as the components wrote them")
    args = parser.parse_args(argv)
    if not args.logs.is_dir():
        print(f"no logs in {args.logs}: is a stack running from there? (`make up` writes .data/logs)", file=sys.stderr)
        return 1
    lines = order_lines(args.logs, args.order_id)
    if not lines:
        print(f"no line of order {args.order_id} in {args.logs}", file=sys.stderr)
        return 1
    for record in lines:
        print(json.dumps(record, default=str) if args.json else format_line(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
