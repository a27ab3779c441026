#!/usr/bin/env python3
"""Concerto's local stack: Kafka, Temporal, the services and the gateway, on one machine.

    .venv/bin/python infra/devstack/stack.py run      # foreground; Ctrl-C stops everything
    .venv/bin/python infra/devstack/stack.py up       # background; returns once all are ready
    .venv/bin/python infra/devstack/stack.py status
    .venv/bin/python infra/devstack/stack.py down

Options: --data-dir DIR (default: .data in the repo), --only kafka,temporal (default: the
STACK_ONLY environment variable, else everything). STACK_READY_TIMEOUT (seconds, default 60)
bounds the wait for each component. REPLICAS=N (default 1) runs N instances of each bounded
context (order-2, ... on the port + 10, + 20, ...): they share the context's database, consumer
group and task queue, and the gateway spreads its calls over them. STACK_TRACE_VIEWER=off leaves
out the trace viewer, Zipkin, and the services then record no spans (the benchmark runs so:
exporting every span costs CPU per order, ADR 18); the default, zipkin, runs it beside Kafka.

Kafka starts first, then Temporal, then the services side by side, then the gateway: each
stage waits until the one before it is healthy, because it needs it. Everything lives in the
data dir:

    kafka/           broker storage, its cluster id, the generated server.properties
    (Zipkin, the trace viewer, keeps its traces in memory only: a restart forgets them)
    temporal/        temporal.db (SQLite)
    logs/NAME.log    stdout and stderr of each component
    run/NAME.pid     process id of each running component (also its process group id)
    run/service-keys/CALLER.key, .pub   the gateway's and payment's service-token keys (ADR 12)

Only the Python standard library is used, so this runs before any dependency is installed.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import socket
import string
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
KAFKA_LIBS = REPO / ".tools" / "kafka" / "libs"
ZIPKIN_DIR = REPO / ".tools" / "zipkin"  # Zipkin's server, one jar (infra/zipkin/pom.xml)

HOST = "127.0.0.1"
KAFKA_PORT, KAFKA_CONTROLLER_PORT = 9092, 9093
TEMPORAL_PORT, TEMPORAL_UI_PORT = 7233, 8233
ZIPKIN_PORT = 9411  # its collector (POST /api/v2/spans), its API and its UI (/zipkin/)

# The Python services, started in this order after Kafka and Temporal. Each runs as
# `.venv/bin/python -m MODULE` (MODULE defaults to concerto_NAME; it may carry arguments)
# and is ready when GET http://127.0.0.1:PORT/health/ready answers 200.
# To add a service, add a row.
SERVICES = [
    # name          port  module
    ("cardpay",     8201, "concerto_psp_simulators.cardpay"),  # simulated external PSPs
    ("paynext",     8202, "concerto_psp_simulators.paynext"),
    ("order",       8101, None),
    ("payment",     8102, None),
    ("fulfillment", 8103, None),
    ("loyalty",     8104, None),
    ("monitor",     8105, None),  # the saga monitor: reads every context's events
    ("dev-issuer",  8300, "concerto_dev_issuer"),  # a development identity provider: customers' tokens
    ("gateway",     8080, None),  # last: it routes to the others
]

# The contexts that can run as several instances (REPLICAS=2): Kafka shares their consumer
# group's partitions between them, Temporal their task queue's tasks.
REPLICATED = {"order", "payment", "fulfillment", "loyalty", "monitor"}
REPLICA_PORT_STEP = 10

# The services that call others, each signing its calls with a key of its own (ADR 12): the
# gateway calls the contexts, payment the simulated payment gateways.
SERVICE_CALLERS = ("gateway", "payment")

# Seconds each component gets to become ready (raise it on a slow machine).
READY_TIMEOUT = float(os.environ.get("STACK_READY_TIMEOUT", "60"))
POLL = 0.5  # seconds between health checks


class StackError(Exception):
    """A problem worth one clear line to the user, not a traceback."""


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


# --- Health probes: each returns None when ready, else why not ------------------------------


def kafka_probe() -> str | None:
    """Ask the broker for cluster metadata: ready once it answers and lists itself.

    A bare TCP connect is not quite enough, so this sends a tiny Metadata request
    (API key 3, version 4, no topics) and reads the broker count from the answer.
    """
    client_id = b"concerto-stack"
    request = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id  # header: api, version, correlation id, client id
    request += struct.pack(">i?", 0, False)  # body: zero topics, do not auto-create
    try:
        with socket.create_connection((HOST, KAFKA_PORT), timeout=2) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
            answer = _recv_exactly(sock, size)
    except OSError as error:
        return _describe(error)
    _correlation_id, _throttle_ms, brokers = struct.unpack(">iii", answer[:12])
    return None if brokers > 0 else "broker not registered yet"


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        data += chunk
    return data


def temporal_probe() -> str | None:
    """Ready when `temporal operator cluster health` says SERVING."""
    if not port_in_use(TEMPORAL_PORT):  # cheap check first: the CLI is a big binary to start
        return "connection refused"
    try:
        result = subprocess.run(
            [str(VENV_BIN / "temporal"), "operator", "cluster", "health", "--address", f"{HOST}:{TEMPORAL_PORT}"],
            capture_output=True, text=True, timeout=10,
        )
    except subprocess.TimeoutExpired:
        return "health check timed out"
    if "SERVING" in result.stdout:
        return None
    lines = (result.stdout + result.stderr).strip().splitlines()
    return f"health answered {lines[0] if lines else 'nothing'}"


def http_probe(port: int, path: str = "/health/ready") -> Callable[[], str | None]:
    def probe() -> str | None:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=2) as response:
                return None if response.status == 200 else f"health answered {response.status}"
        except urllib.error.HTTPError as error:
            return f"health answered {error.code}"
        except (urllib.error.URLError, OSError) as error:
            return _describe(getattr(error, "reason", error))
    return probe


def _describe(error: object) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "no answer (timed out)"
    return str(error)


# --- Components -----------------------------------------------------------------------------


@dataclass
class Component:
    name: str
    ports: list[int]
    url: str  # shown when ready
    command: Callable[[Path], list[str]]  # data dir -> argv
    probe: Callable[[], str | None]
    prepare: Callable[[Path], None] = lambda data: None  # runs before the start
    stop_timeout: float = 10.0  # seconds between SIGTERM and SIGKILL
    stage: int = 0  # components of one stage start together, after the stage before is ready


def new_kafka_cluster_id() -> str:
    # Kafka's format: 16 random bytes, URL-safe base64 without padding (what
    # `kafka-storage random-uuid` prints). Kafka avoids ids starting with "-" (they look like flags).
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def prepare_kafka(data: Path) -> None:
    if not list(KAFKA_LIBS.glob("kafka_*.jar")):
        raise StackError(f"Kafka jars are missing in {KAFKA_LIBS}: run `make setup`")
    home = data / "kafka"
    home.mkdir(parents=True, exist_ok=True)
    template = string.Template((REPO / "infra/kafka/server.properties").read_text())
    (home / "server.properties").write_text(template.substitute(log_dirs=home / "data"))
    if (home / "data" / "meta.properties").exists():
        return  # formatted on an earlier start
    # KRaft storage must be formatted once, with a cluster id, before the first start.
    id_file = home / "cluster.id"
    if not id_file.exists():
        id_file.write_text(new_kafka_cluster_id())
    say("formatting Kafka storage (first start)")
    result = subprocess.run(
        java("kafka.tools.StorageTool", "format", "-t", id_file.read_text().strip(), "-c", str(home / "server.properties")),
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def java_executable() -> str:
    """JAVA_HOME's java if set, else the one on the PATH (Kafka and Zipkin run on it)."""
    return str(Path(os.environ["JAVA_HOME"], "bin", "java")) if os.environ.get("JAVA_HOME") else "java"


def java(main_class: str, *args: str) -> list[str]:
    return [
        java_executable(),
        *os.environ.get("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m").split(),  # bounded: laptops and CI are small
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={REPO / 'infra/kafka/log4j2.properties'}",
        "-cp", f"{KAFKA_LIBS}/*",
        main_class, *args,
    ]


def trace_viewer_on() -> bool:
    """Whether the stack runs Zipkin and the services send it their spans (STACK_TRACE_VIEWER)."""
    setting = os.environ.get("STACK_TRACE_VIEWER", "zipkin").strip().lower()
    if setting not in ("zipkin", "off"):
        raise StackError(f"STACK_TRACE_VIEWER={setting!r}: zipkin (the default) or off")
    return setting == "zipkin"


def zipkin_jar() -> Path:
    jars = sorted(ZIPKIN_DIR.glob("zipkin-server-*-exec.jar"))
    if not jars:
        raise StackError(f"Zipkin's jar is missing in {ZIPKIN_DIR}: run `make setup` (or STACK_TRACE_VIEWER=off)")
    return jars[-1]


def prepare_zipkin(data: Path) -> None:
    zipkin_jar()


def zipkin_command(data: Path) -> list[str]:
    return [
        java_executable(),
        # Small and quick to start: it holds one developer's traces, in memory (ZIPKIN_ENVIRONMENT).
        *os.environ.get("ZIPKIN_HEAP_OPTS", "-Xms64m -Xmx384m").split(),
        "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
        "-jar", str(zipkin_jar()),
        # Its one port, on the loopback only (Armeria's list of ports is bound as a whole).
        f"--armeria.ports[0].port={ZIPKIN_PORT}", f"--armeria.ports[0].ip={HOST}", "--armeria.ports[0].protocols[0]=http",
    ]


# Zipkin reads its settings from the environment. It would collect from Kafka too, given the
# KAFKA_BOOTSTRAP_SERVERS every component gets: spans come over HTTP only.
ZIPKIN_ENVIRONMENT = {
    "STORAGE_TYPE": "mem",
    "MEM_MAX_SPANS": "200000",  # some thousands of orders; the oldest traces go first
    "COLLECTOR_KAFKA_ENABLED": "false",
    "COLLECTOR_RABBITMQ_ENABLED": "false",
    "COLLECTOR_ACTIVEMQ_ENABLED": "false",
    "COLLECTOR_PULSAR_ENABLED": "false",
    "COLLECTOR_GRPC_ENABLED": "false",
    "DISCOVERY_EUREKA_ENABLED": "false",
    "SELF_TRACING_ENABLED": "false",
}


TEMPORAL_SQLITE_PRAGMAS = ["--sqlite-pragma", "journal_mode=WAL", "--sqlite-pragma", "synchronous=OFF"]
TEMPORAL_CACHES = [
    "--dynamic-config-value", "history.cacheMaxSize=16384",
    "--dynamic-config-value", "history.eventsCacheMaxSizeBytes=67108864",
]


def prepare_temporal(data: Path) -> None:
    if not (VENV_BIN / "temporal").exists():
        raise StackError(f"{VENV_BIN / 'temporal'} is missing: run `make setup`")
    (data / "temporal").mkdir(parents=True, exist_ok=True)


def prepare_service(data: Path) -> None:
    if not (VENV_BIN / "python").exists():
        raise StackError(f"{VENV_BIN / 'python'} is missing: run `make setup`")


def components_of(replicas: int) -> list[Component]:
    """Every component, with `replicas` instances of each context in REPLICATED."""
    return [
        Component(
            "kafka", [KAFKA_PORT, KAFKA_CONTROLLER_PORT], f"{HOST}:{KAFKA_PORT} (bootstrap servers)",
            command=lambda data: java("kafka.Kafka", str(data / "kafka" / "server.properties")),
            probe=kafka_probe, prepare=prepare_kafka, stop_timeout=30, stage=0,
        ),
        # The trace viewer: it needs nothing, and the services send it spans from their start.
        Component(
            "zipkin", [ZIPKIN_PORT], f"http://{HOST}:{ZIPKIN_PORT}/zipkin/ (traces)",
            command=zipkin_command, probe=http_probe(ZIPKIN_PORT, "/health"), prepare=prepare_zipkin, stage=0,
        ),
        Component(
            "temporal", [TEMPORAL_PORT, TEMPORAL_UI_PORT], f"{HOST}:{TEMPORAL_PORT}, UI http://{HOST}:{TEMPORAL_UI_PORT}",
            command=lambda data: [
                str(VENV_BIN / "temporal"), "server", "start-dev",
                "--ip", HOST, "--port", str(TEMPORAL_PORT), "--ui-port", str(TEMPORAL_UI_PORT),
                "--db-filename", str(data / "temporal" / "temporal.db"),
                "--log-level", "warn",
                # A workflow started by a service whose own worker polls its task queue gets its first
                # task in the start's answer, and an activity its worker will run comes back with the
                # workflow task's: fewer round trips per order (ADR 8).
                "--dynamic-config-value", "system.enableEagerWorkflowStart=true",
                "--dynamic-config-value", "system.enableActivityEagerExecution=true",
                # SQLite as the Temporal SDKs' own load tests run it: a write-ahead log, and no
                # fsync per commit. A SIGKILL of Temporal loses nothing (the chaos run does it);
                # an OS crash or power cut may lose the last transactions (ADR 8).
                *TEMPORAL_SQLITE_PRAGMAS,
                # Every open run's mutable state and recent events stay in memory (one history
                # shard here): a workflow task, signal or timer never reloads them from SQLite.
                *TEMPORAL_CACHES,
            ],
            probe=temporal_probe, prepare=prepare_temporal, stop_timeout=15, stage=1,
        ),
    ] + [
        Component(
            name, [port], f"http://{HOST}:{port}",
            command=lambda data, name=name, module=module: [
                str(VENV_BIN / "python"), "-m", *(module or f"concerto_{service_of(name)}").split(),
            ],
            probe=http_probe(port), prepare=prepare_service,
            # The services need only Kafka and Temporal, so they start side by side; the gateway,
            # which routes to them, after them.
            stage=3 if name == "gateway" else 2,
        )
        for name, port, module in service_instances(replicas)
    ]


def service_instances(replicas: int) -> list[tuple[str, int, str | None]]:
    """SERVICES with the extra instances: order, order-2 (port 8111), order-3 (8121), ..."""
    return [
        (name if i == 1 else f"{name}-{i}", port + REPLICA_PORT_STEP * (i - 1), module)
        for name, port, module in SERVICES
        for i in range(1, (replicas if name in REPLICATED else 1) + 1)
    ]


def service_of(instance: str) -> str:
    """order-2 -> order (and dev-issuer -> dev-issuer: only a number is a replica's)."""
    return re.sub(r"-\d+$", "", instance)


def replicas_of(data: Path) -> int:
    """REPLICAS, or as many instances as are running already (so `down` finds them all)."""
    running = [int(m.group(1)) for pid in (data / "run").glob("*.pid") if (m := re.fullmatch(r".+-(\d+)\.pid", pid.name))]
    return max([int(os.environ.get("REPLICAS", "1")), *running])


def environment(data: Path, component: Component) -> dict[str, str]:
    """What a component is told: where the data and the other components are.

    The names are the ones concerto_runtime.Settings reads (see the README's settings table).
    """
    env = dict(os.environ)  # DATABASE_URL, LOG_LEVEL and the like pass through
    # Cached bytecode, under the data dir: Temporal's sandbox imports a workflow's module afresh
    # for every workflow run, and compiling it from source each time costs milliseconds of CPU.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(data / "pycache")
    env.update(
        CONCERTO_DATA_DIR=str(data),
        KAFKA_BOOTSTRAP_SERVERS=f"{HOST}:{KAFKA_PORT}",
        TEMPORAL_ADDRESS=f"{HOST}:{TEMPORAL_PORT}",
        PYTHONUNBUFFERED="1",  # log lines reach the log file as they happen
        # Tags that let `down` recognise our processes, even without pid files (see tagged_groups()).
        CONCERTO_STACK=str(data),
        CONCERTO_STACK_COMPONENT=component.name,
    )
    # ORDER_SERVICE_URL=http://127.0.0.1:8101 (or, with replicas, ...:8101,http://127.0.0.1:8111):
    # the gateway routes by them.
    instances = service_instances(replicas_of(data))
    for name, _, _ in SERVICES:
        urls = [f"http://{HOST}:{port}" for instance, port, _ in instances if service_of(instance) == name]
        env[f"{name.upper().replace('-', '_')}_SERVICE_URL"] = ",".join(urls)
    is_service = component.name in {name for name, _, _ in instances}
    if is_service:
        env["HTTP_PORT"] = str(component.ports[0])
    if component.name == "zipkin":
        env.update(ZIPKIN_ENVIRONMENT)
    if trace_viewer_on() and is_service:
        # Every span to Zipkin, as its JSON (concerto_observability.tracing), and the monitor
        # links each order to its trace page (ADR 18). An outside choice of exporter wins. The
        # services only: Temporal's server reads OTEL_TRACES_EXPORTER too, and refuses to start
        # on an exporter it does not know.
        env.setdefault("OTEL_TRACES_EXPORTER", "zipkin_json")
        env.setdefault("OTEL_EXPORTER_ZIPKIN_ENDPOINT", f"http://{HOST}:{ZIPKIN_PORT}/api/v2/spans")
        env.setdefault("TRACE_VIEWER_URL", f"http://{HOST}:{ZIPKIN_PORT}/zipkin/traces/{{trace_id}}")
    # Calls between the services are signed (ADR 12): the gateway's and payment's each with a key
    # of its own, made for this data dir on its first start, never a default anyone else knows.
    # Every process is told the callers' public keys, which sign nothing; only the caller itself
    # gets its signing key (never one inherited from the launcher's environment).
    keys = {caller: service_key_pair(data, caller) for caller in SERVICE_CALLERS}
    env["SERVICE_CALLER_KEYS"] = json.dumps({caller: public for caller, (_, public) in keys.items()})
    env.pop("SERVICE_SIGNING_KEY", None)
    if service_of(component.name) in keys:
        env["SERVICE_SIGNING_KEY"] = keys[service_of(component.name)][0]
    # The local stack's API keys, known to the README's curl examples and the tests; the
    # gateway itself has none unless they are given (compose and any deployment set their own).
    env.setdefault("CONCERTO_API_KEY", "dev-key")
    env.setdefault("CONCERTO_ADMIN_API_KEY", "dev-admin-key")
    return env


def service_key_pair(data: Path, caller: str) -> tuple[str, str]:
    """`caller`'s signing key (run/service-keys/CALLER.key, mode 0600) and public key (.pub)."""
    private, public = data / "run" / "service-keys" / f"{caller}.key", data / "run" / "service-keys" / f"{caller}.pub"
    if not private.exists():
        # Through the workspace's cryptography: starting the services needs the venv anyway, and
        # `down` and `status`, which never come here, stay standard-library only.
        from concerto_runtime.service_tokens import new_key_pair

        made = new_key_pair()
        private.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(made[0])
        public.write_text(made[1])
    return private.read_text().strip(), public.read_text().strip()


# --- Processes ------------------------------------------------------------------------------
# Each component is started in a new session, so it leads its own process group: one signal
# to the group reaches the component and anything it spawned, and a Ctrl-C in the terminal
# reaches only this launcher, which then stops the components in order.


def pid_file(data: Path, component: Component) -> Path:
    return data / "run" / f"{component.name}.pid"


def log_file(data: Path, component: Component) -> Path:
    return data / "logs" / f"{component.name}.log"


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a process, from /proc (Linux); None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    return fields[0], int(fields[2])


def _proc_env(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


HAVE_PROC = Path("/proc/self/stat").exists()


def group_alive(pgid: int) -> bool:
    if HAVE_PROC:  # zombies (exited, not yet reaped by their parent) do not count
        return any((s := _proc_stat(pid)) and s[1] == pgid and s[0] != "Z" for pid in _all_pids())
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def is_ours(pid: int, data: Path) -> bool:
    """Guard against a stale pid file whose pid now belongs to someone else."""
    return not HAVE_PROC or _proc_env(pid).get("CONCERTO_STACK") == str(data)


def running_pid(data: Path, component: Component) -> int | None:
    """The pid of this component if a pid file names a live process group of ours."""
    try:
        pid = int(pid_file(data, component).read_text())
    except (OSError, ValueError):
        return None
    return pid if group_alive(pid) and is_ours(pid, data) else None


def stop_group(name: str, pgid: int, timeout: float) -> None:
    """SIGTERM the whole group, wait up to `timeout`, then SIGKILL whatever is left."""
    if signal_group(pgid, signal.SIGTERM) and not wait_gone(pgid, timeout):
        say(f"{name} did not stop within {timeout:.0f}s: killing it")
        signal_group(pgid, signal.SIGKILL)
        wait_gone(pgid, 5.0)


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def wait_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def stop(data: Path, component: Component, pgid: int) -> None:
    say(f"stopping {component.name} (pid {pgid})")
    stop_group(component.name, pgid, component.stop_timeout)
    pid_file(data, component).unlink(missing_ok=True)


def tagged_groups(data: Path, components: list[Component]) -> dict[int, str]:
    """Process groups (-> component name) of live processes that carry our tags (Linux only)."""
    if not HAVE_PROC:
        return {}
    names = {c.name for c in components}
    groups = {}
    for pid in _all_pids():
        env, stat = _proc_env(pid), _proc_stat(pid)
        if stat and stat[0] != "Z" and env.get("CONCERTO_STACK") == str(data) and env.get("CONCERTO_STACK_COMPONENT") in names:
            groups[stat[1]] = env["CONCERTO_STACK_COMPONENT"]
    return groups


# --- Ports ----------------------------------------------------------------------------------


def port_in_use(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def who_listens(port: int) -> str:
    """Best effort: 'pid 123: java -cp ...', using ss (Linux) or lsof (macOS)."""
    for command in (["ss", "-Hltnp", f"sport = :{port}"], ["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-Fp"]):
        try:
            output = subprocess.run(command, capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        found = re.search(r"pid=(\d+)", output) or re.search(r"^p(\d+)$", output, re.MULTILINE)
        if found:
            pid = int(found.group(1))
            cmdline = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
            tag = _proc_env(pid).get("CONCERTO_STACK")
            ours = f" (started by stack.py: stop it with `down --data-dir {tag}`)" if tag else ""
            return f"pid {pid}: {cmdline[:120]}{ours}"
    return "an unknown process"


# --- Commands -------------------------------------------------------------------------------


def tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64_000))
            text = f.read().decode(errors="replace")
    except OSError:
        return "    (no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (empty)"


def wait_ready(component: Component, process: subprocess.Popen | None, pgid: int) -> str | None:
    """Poll until the component is ready (None) or its deadline passes (the reason)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if process is not None and process.poll() is not None:
            return f"process exited with code {process.returncode}"
        if process is None and not group_alive(pgid):
            return "process is gone"
        reason = component.probe()
        if reason is None:
            return None
        if time.monotonic() > deadline:
            return f"not ready after {READY_TIMEOUT:.0f}s: {reason}"
        time.sleep(POLL)


def start_all(data: Path, components: list[Component], started: list[tuple[Component, subprocess.Popen]]) -> None:
    """Start what is not running yet, stage by stage, each stage gated on its health checks.

    Appends what it starts to `started`, so that the caller can stop exactly that on failure.
    """
    running = {c.name: pid for c in components if (pid := running_pid(data, c))}
    taken = [
        f"port {port} ({c.name}) is already in use by {who_listens(port)}"
        for c in components if c.name not in running for port in c.ports if port_in_use(port)
    ]
    if taken:
        raise StackError("cannot start:\n  " + "\n  ".join(taken))

    for folder in ("logs", "run"):
        (data / folder).mkdir(parents=True, exist_ok=True)
    for stage in sorted({c.stage for c in components}):
        waiting = []
        for component in (c for c in components if c.stage == stage):
            process = None
            pgid = running.get(component.name)
            if pgid:
                say(f"{component.name} is already running (pid {pgid})")
            else:
                component.prepare(data)
                with log_file(data, component).open("wb") as log:
                    process = subprocess.Popen(
                        component.command(data), cwd=REPO, env=environment(data, component),
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        start_new_session=True,  # own process group; survives the end of `up`
                    )
                pgid = process.pid
                started.append((component, process))
                pid_file(data, component).write_text(str(pgid))
            waiting.append((component, process, pgid))
        began = time.monotonic()
        for component, process, pgid in waiting:
            reason = wait_ready(component, process, pgid)
            if reason:
                log = log_file(data, component)
                raise StackError(f"{component.name} is not ready: {reason}\nlast 20 lines of {log}:\n{tail(log)}")
            say(f"{component.name:<12} ready in {time.monotonic() - began:4.1f}s  {component.url}")


def stop_started(data: Path, started: list[tuple[Component, subprocess.Popen]]) -> None:
    # Signals during the shutdown must not cut it short: the deadlines bound it anyway.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    for component, process in reversed(started):
        stop(data, component, process.pid)


def summary(data: Path, components: list[Component]) -> None:
    names = {c.name for c in components}
    say(f"Concerto is up. Data in {data}, logs in {data / 'logs'}")
    if "gateway" in names:
        say(f"  Gateway      http://{HOST}:8080/docs")
    if "temporal" in names:
        say(f"  Temporal UI  http://{HOST}:{TEMPORAL_UI_PORT}")
    if "zipkin" in names:
        say(f"  Traces       http://{HOST}:{ZIPKIN_PORT}/zipkin/  (an order's logs: make logs ORDER=<id>)")
    if "kafka" in names:
        say(f"  Kafka        {HOST}:{KAFKA_PORT}")


def stop_on_signals(*signals: signal.Signals) -> None:
    """Turn these signals into KeyboardInterrupt, so that SIGTERM ends us the way Ctrl-C does.

    SIGINT is set too: a shell starts background jobs with SIGINT ignored.
    """
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    for sig in signals:
        signal.signal(sig, interrupt)


def cmd_run(data: Path, components: list[Component]) -> int:
    stop_on_signals(signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    started: list[tuple[Component, subprocess.Popen]] = []
    try:
        start_all(data, components, started)
        summary(data, components)
        say("press Ctrl-C to stop")
        while True:  # keep watch: if a component dies, the stack is not whole any more
            for component, process in started:
                if process.poll() is not None:
                    log = log_file(data, component)
                    say(f"{component.name} exited with code {process.returncode}; last 20 lines of {log}:\n{tail(log)}")
                    return 1
            time.sleep(1)
    except StackError as error:
        say(str(error))
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        stop_started(data, started)


def cmd_up(data: Path, components: list[Component]) -> int:
    stop_on_signals(signal.SIGINT, signal.SIGTERM)
    started: list[tuple[Component, subprocess.Popen]] = []
    try:
        start_all(data, components, started)
    except StackError as error:
        say(str(error))
        stop_started(data, started)
        return 1
    except KeyboardInterrupt:
        stop_started(data, started)
        return 130
    summary(data, components)
    how = "make down" if data == REPO / ".data" else f"{sys.executable} {__file__} down --data-dir {data}"
    say(f"running in the background; stop it with: {how}")
    return 0


def cmd_down(data: Path, components: list[Component]) -> int:
    for component in reversed(components):
        pid = running_pid(data, component)
        if pid:
            stop(data, component, pid)
        pid_file(data, component).unlink(missing_ok=True)
    # Leftovers: processes of ours that no pid file names (deleted data dir, killed launcher).
    position = {c.name: i for i, c in enumerate(components)}
    for pgid, name in sorted(tagged_groups(data, components).items(), key=lambda group: -position[group[1]]):
        say(f"stopping leftover {name} (process group {pgid})")
        stop_group(name, pgid, 10.0)
    for port in (p for c in components for p in c.ports if port_in_use(p)):
        say(f"warning: port {port} is still in use by {who_listens(port)}")
    if tagged_groups(data, components):
        say("some processes could not be stopped")
        return 1
    say(f"the stack in {data} is stopped")
    return 0


def cmd_status(data: Path, components: list[Component]) -> int:
    healthy = True
    for component in components:
        pid = running_pid(data, component)
        reason = component.probe() if pid else "not running"
        healthy &= reason is None
        state = "healthy" if reason is None else f"NOT READY: {reason}"
        say(f"{component.name:<12} pid {pid or '-':<8} {state:<40} {component.url}")
    return 0 if healthy else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["run", "up", "down", "status"])
    parser.add_argument("--data-dir", type=Path, default=REPO / ".data", help="state, logs and pid files (default: .data)")
    parser.add_argument("--only", default=os.environ.get("STACK_ONLY", ""), help="comma-separated components, e.g. kafka,temporal")
    args = parser.parse_args()

    data = args.data_dir.resolve()
    every = components_of(replicas_of(data))
    try:
        if args.command != "down" and not trace_viewer_on():
            every = [c for c in every if c.name != "zipkin"]  # `down` stops one all the same
    except StackError as error:
        parser.error(str(error))
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(wanted) - {c.name for c in every}
    if unknown:
        parser.error(f"unknown component(s) {', '.join(sorted(unknown))}; known: {', '.join(c.name for c in every)}")
    components = [c for c in every if not wanted or c.name in wanted]
    command = {"run": cmd_run, "up": cmd_up, "down": cmd_down, "status": cmd_status}[args.command]
    return command(data, components)


if __name__ == "__main__":
    sys.exit(main())
