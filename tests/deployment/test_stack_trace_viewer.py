"""The local stack's trace viewer (ADR 18), read from infra/devstack/stack.py without starting
anything: Zipkin is a component bound to the loopback, the services are told to send it their
spans, and STACK_TRACE_VIEWER=off (the benchmark's stacks) leaves both out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from concerto_runtime.testing import load_module

REPO = Path(__file__).resolve().parents[2]
stack = load_module("concerto_devstack", REPO / "infra" / "devstack" / "stack.py")


@pytest.fixture
def clean_environment(monkeypatch):
    for name in list(os.environ):
        monkeypatch.delenv(name)
    return monkeypatch


def component(name: str):
    return next(c for c in stack.components_of(1) if c.name == name)


def test_zipkin_listens_on_the_loopback_only_and_collects_over_http_only(tmp_path, clean_environment):
    zipkin = component("zipkin")
    assert zipkin.ports == [stack.ZIPKIN_PORT] and zipkin.stage == 0
    if not list(stack.ZIPKIN_DIR.glob("zipkin-server-*-exec.jar")):
        pytest.skip("Zipkin's jar is not in .tools/zipkin: `make setup` fetches it")
    command = zipkin.command(tmp_path)
    assert f"--armeria.ports[0].ip={stack.HOST}" in command and stack.HOST == "127.0.0.1"
    env = stack.environment(tmp_path, zipkin)
    assert env["COLLECTOR_KAFKA_ENABLED"] == "false" and env["STORAGE_TYPE"] == "mem"


def test_the_services_send_their_spans_to_zipkin_by_default(tmp_path, clean_environment):
    env = stack.environment(tmp_path, component("payment"))
    assert env["OTEL_TRACES_EXPORTER"] == "zipkin_json"
    assert env["OTEL_EXPORTER_ZIPKIN_ENDPOINT"] == f"http://127.0.0.1:{stack.ZIPKIN_PORT}/api/v2/spans"
    assert env["TRACE_VIEWER_URL"] == f"http://127.0.0.1:{stack.ZIPKIN_PORT}/zipkin/traces/{{trace_id}}"


def test_temporal_kafka_and_zipkin_are_not_told_the_services_exporter(tmp_path, clean_environment):
    # Temporal's server reads OTEL_TRACES_EXPORTER too and refuses to start on zipkin_json.
    for name in ("temporal", "kafka", "zipkin"):
        assert "OTEL_TRACES_EXPORTER" not in stack.environment(tmp_path, component(name)), name


def test_without_the_viewer_nothing_is_sent_and_zipkin_does_not_start(tmp_path, clean_environment):
    clean_environment.setenv("STACK_TRACE_VIEWER", "off")
    env = stack.environment(tmp_path, component("payment"))
    assert not {"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_ZIPKIN_ENDPOINT", "TRACE_VIEWER_URL"} & set(env)
    status = subprocess.run(
        [sys.executable, str(REPO / "infra/devstack/stack.py"), "status", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "STACK_TRACE_VIEWER": "off"},
    )
    assert "zipkin" not in status.stdout and "kafka" in status.stdout, status.stdout


def test_the_benchmark_runs_its_stacks_without_the_viewer(tmp_path, clean_environment):
    from concerto_bench import bench

    started: list[dict] = []
    clean_environment.setattr(bench.subprocess, "run", lambda argv, check, env: started.append(env))
    bench.stack("up", tmp_path, env={"RATE_LIMIT": "100000/second"})
    assert started[0]["STACK_TRACE_VIEWER"] == "off"
