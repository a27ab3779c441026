"""One order's log lines from every component's file, merged by time (`make logs ORDER=...`)."""

from __future__ import annotations

import json
from pathlib import Path

from concerto_observability.order_logs import format_line, main, order_lines

ORDER, OTHER = "ord-1", "ord-2"


def write(logs: Path, component: str, *lines: dict | str) -> None:
    logs.mkdir(exist_ok=True)
    (logs / f"{component}.log").write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))


def line(time: str, message: str, order_id: str | None = ORDER, correlation_id: str | None = "corr-1", trace_id: str | None = "t1", **more) -> dict:
    return {"time": f"2026-01-31 12:00:{time}", "level": "INFO", "logger": "x", "message": message,
            "order_id": order_id, "correlation_id": correlation_id, "trace_id": trace_id, **more}


def test_an_orders_lines_from_every_file_merged_by_time(tmp_path):
    write(tmp_path, "order", line("00,100", "order placed"), line("02,000", "order completed"), line("01,000", "other", OTHER, "corr-2", "t2"))
    write(tmp_path, "payment", "Traceback (most recent call last):", line("00,500", "payment completed"))
    # The gateway's call on the order's behalf, before its id was known: its correlation id and trace.
    write(tmp_path, "gateway", line("00,050", "order accepted", None), line("00,060", "someone else's call", None, "corr-9", "t9"))
    write(tmp_path, "loyalty", line("01,500", "awarded 10 points", temporal_activity={"activity_type": "apply_change"}))

    lines = order_lines(tmp_path, ORDER)
    assert [(record["component"], record["message"]) for record in lines] == [
        ("gateway", "order accepted"),
        ("order", "order placed"),
        ("payment", "payment completed"),
        ("loyalty", "awarded 10 points"),
        ("order", "order completed"),
    ]
    assert order_lines(tmp_path, ORDER, limit=2)[0]["message"] == "awarded 10 points"  # the latest ones
    assert order_lines(tmp_path, "nobody") == []
    printed = format_line(lines[3])
    assert printed.startswith("2026-01-31 12:00:01,500  loyalty") and "awarded 10 points" in printed and "temporal_activity" not in printed


def test_the_command_prints_them_and_says_when_there_are_none(tmp_path, capsys):
    write(tmp_path, "order", line("00,100", "order placed"))
    assert main([ORDER, "--logs", str(tmp_path)]) == 0
    assert "order placed" in capsys.readouterr().out
    assert main(["nobody", "--logs", str(tmp_path)]) == 1
    assert "no line of order nobody" in capsys.readouterr().err
    assert main([ORDER, "--logs", str(tmp_path / "missing")]) == 1
