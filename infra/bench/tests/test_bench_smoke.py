"""`make bench`, a few seconds of it: the harness places orders with the running stack and with
the floor, and writes its JSON, its table and its plot. It asserts that the pieces work, never
how fast they are (figures belong to `make bench` and docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080")

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack_running() -> None:
    try:
        httpx.get(f"{GATEWAY}/health/ready", timeout=3).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.skip(f"the bench smoke run needs the running stack at {GATEWAY} (make test starts it): {exc}")


def test_bench_smoke_run_writes_results_table_and_plot(stack_running, tmp_path: Path) -> None:
    data_dir = os.environ.get("STACK_DATA_DIR", str(REPO / ".data" / "test"))
    run = subprocess.run(
        [sys.executable, "-m", "concerto_bench.bench", "--smoke", "--use-running", "--data-dir", data_dir,
         "--gateway-url", GATEWAY, "--out-dir", str(tmp_path)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "infra" / "bench")},
        capture_output=True, text=True, timeout=240,
    )
    assert run.returncode == 0, f"bench failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert "placed" in run.stdout  # progress is printed while it runs

    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["targets"]) == {"platform", "floor"}
    for name, target in results["targets"].items():
        (step,) = target["steps"]
        assert step["sent"] == 6, name  # 2 orders a second for 3 s
        assert step["completed"] == step["sent"], f"{name}: {step['errors']}"  # each ended as it should
        assert step["p95"] is not None, name
        assert step["cpu_ms_per_order"].get("temporal", 0) > 0, f"{name}: no CPU figure for Temporal"
        assert target["idle"]["orders"] == 1
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "benchmarks.md").read_text()
    assert "| platform | 2 |" in table and "| floor | 2 |" in table
