"""`make bench`: how many orders a second Concerto sustains, and what coordination alone costs.

    .venv/bin/python -m concerto_bench.bench                 # a fresh stack under .data/bench
    .venv/bin/python -m concerto_bench.bench --use-running   # the stack `make up` started
    .venv/bin/python -m concerto_bench.bench --smoke --use-running --out-dir /tmp/bench

(with PYTHONPATH=infra/bench; `make bench` sets it). Two targets go through the same harness:

- **platform**: Concerto itself, through the gateway, as a client uses it;
- **floor**: the same saga with no business code (concerto_bench.floor): as many processes,
  workflows, activities, signals and Kafka hops, but no database and no rules. What the floor
  costs is what coordination costs; platform/floor shows what the business code adds.

For each target the harness measures one order at a time at idle, then offers orders at fixed
rates in steps (open loop: an order is placed on schedule whether or not the earlier ones have
finished; 1 in 10 with a card that is declined). Each order is timed from its POST to its
terminal status (the order's `updated_at` when it got there, so polling does not blur it). A
rate is *sustained* when every order ended with the right status, p95 stayed under 3 s and
the orders in flight did not keep growing. A rate that is not gets a second try (on two busy
cores a hiccup is not a limit); the ladder stops at the first rate that fails both.

Per step it also records each component's CPU seconds per order and peak memory (the process
groups the stack launcher and this harness started). Results go to a JSON file, a markdown
table (spliced into docs/benchmarks.md) and a plot of latency against offered rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform as platform_module
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from statistics import mean

import httpx

REPO = Path(__file__).resolve().parents[3]
PYTHON = REPO / ".venv" / "bin" / "python"
STACK = [str(PYTHON), str(REPO / "infra" / "devstack" / "stack.py")]
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

P95_LIMIT = 3.0  # seconds: above it, a rate is not sustained
SKUS = ["CON-BATON", "CON-SCORE-B5", "CON-METRONOME", "CON-STAND", "CON-ROSIN", "CON-TUNER"]
PLATFORM_SERVICES = ["cardpay", "paynext", "order", "payment", "fulfillment", "loyalty", "monitor", "gateway"]
FLOOR_CONTEXTS = {"order": 8191, "payment": 8192, "fulfillment": 8193, "loyalty": 8194, "monitor": 8195, "edge": 8190}
TERMINAL = {"COMPLETED", "CANCELLED"}


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


# --- What one order is --------------------------------------------------------------------------


def order_body(n: int) -> dict:
    declined = n % 10 == 9  # 1 in 10
    return {
        "customer": {"id": f"bench-{n % 500}", "email": f"bench{n % 500}@example.com", "name": "Bench Mark"},
        "items": [{"sku": SKUS[n % len(SKUS)], "quantity": 1}],
        "shipping_address": {"name": "Bench Mark", "line1": "1 Load Lane", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
        "payment": {"token": "tok_chargeDeclined" if declined else "tok_visa"},
        "promotion_codes": [],
        "channel": "web",
    }


@dataclass
class Order:
    n: int
    sent_at: float  # wall clock, when the POST went out
    expected: str
    order_id: str | None = None
    status: str | None = None
    ended_at: float | None = None  # wall clock of the terminal status (the order's updated_at)
    error: str | None = None

    @property
    def latency(self) -> float | None:
        return self.ended_at - self.sent_at if self.ended_at is not None else None


@dataclass
class Target:
    """Something the harness can place orders with: a base URL, and the process groups that
    make it up (component -> process group id), for CPU and memory."""

    name: str
    url: str
    headers: dict[str, str]
    groups: dict[str, int]
    poll_first: float = 0.8  # seconds after the POST before the first look: no order is faster
    poll_every: float = 0.4  # then, backing off by half each time, to poll_most at most: a
    poll_most: float = 2.0  # backlog must not be polled into a bigger one (the times are exact anyway)


# --- Process groups: CPU and memory from /proc -------------------------------------------------


def _proc_stats() -> list[tuple[int, float, int]]:
    """(process group, CPU seconds, resident bytes) of every live process."""
    stats = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime (children already reaped count too), rss in pages
        cpu = sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS
        stats.append((int(fields[2]), cpu, int(fields[21]) * PAGE))
    return stats


def sample(groups: dict[str, int]) -> dict[str, tuple[float, int]]:
    """Component -> (CPU seconds so far, resident bytes now)."""
    by_group = {pgid: name for name, pgid in groups.items()}
    totals = {name: [0.0, 0] for name in groups}
    for pgid, cpu, rss in _proc_stats():
        name = by_group.get(pgid)
        if name:
            totals[name][0] += cpu
            totals[name][1] += rss
    return {name: (cpu, rss) for name, (cpu, rss) in totals.items()}


def stack_groups(data: Path, names: list[str]) -> dict[str, int]:
    groups = {}
    for name in names:
        try:
            groups[name] = int((data / "run" / f"{name}.pid").read_text())
        except (OSError, ValueError):
            pass
    return groups


# --- One step: a fixed rate for a fixed time ---------------------------------------------------


@dataclass
class Step:
    target: str
    offered_rate: float
    seconds: float
    attempt: int = 1  # a rate that is not sustained gets a second try (a hiccup is not a limit)
    sent: int = 0
    completed: int = 0  # reached the status it should have
    errors: dict[str, int] = field(default_factory=dict)
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    throughput: float = 0.0  # orders that ended within the offering window, per second
    inflight_growth: float = 0.0  # orders per second by which the backlog grew
    cpu_ms_per_order: dict[str, float] = field(default_factory=dict)
    peak_mib: dict[str, float] = field(default_factory=dict)
    sustained: bool = False


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def place(client: httpx.AsyncClient, target: Target, order: Order, deadline: float) -> None:
    try:
        answer = await client.post(f"{target.url}/api/v1/orders", json=order_body(order.n), headers=target.headers)
        if answer.status_code != 202:
            order.error = f"POST {answer.status_code}"
            return
        order.order_id = answer.json()["order_id"]
        await asyncio.sleep(target.poll_first)
        wait = target.poll_every
        while time.time() < deadline:
            view = await client.get(f"{target.url}/api/v1/orders/{order.order_id}", headers=target.headers)
            if view.status_code == 200 and (body := view.json())["status"] in TERMINAL:
                order.status = body["status"]
                order.ended_at = datetime.fromisoformat(body["updated_at"]).timestamp()
                if order.status != order.expected:
                    order.error = f"ended {order.status}, expected {order.expected}"
                return
            await asyncio.sleep(wait)
            wait = min(wait * 1.5, target.poll_most)
        order.error = "unfinished"
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        order.error = type(exc).__name__


async def settle(target: Target, *, quiet: float = 0.15, deadline: float = 90) -> None:
    """Wait (up to `deadline` seconds) until what is measured is quiet, using under `quiet` of a
    core: a step must not pay for the backlog the one before it left (a consumer catching up)."""
    start = time.time()
    before = sum(cpu for cpu, _ in sample(target.groups).values())
    while time.time() - start < deadline:
        await asyncio.sleep(1.0)
        now = sum(cpu for cpu, _ in sample(target.groups).values())
        if now - before < quiet:
            return
        before = now
    say(f"{target.name} still busy after {deadline:g} s; going on")


async def run_step(target: Target, rate: float, seconds: float, *, drain: float, first: int, label: str) -> Step:
    await settle(target)
    step = Step(target=target.name, offered_rate=rate, seconds=seconds)
    count = max(1, round(rate * seconds))
    orders: list[Order] = []
    tasks: list[asyncio.Task] = []
    before = sample(target.groups)
    peak = {name: rss for name, (_, rss) in before.items()}
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        start = time.time()
        deadline = start + seconds + drain

        async def offer() -> None:
            for i in range(count):
                await asyncio.sleep(max(0.0, start + i / rate - time.time()))
                n = first + i
                order = Order(n=n, sent_at=time.time(), expected="CANCELLED" if n % 10 == 9 else "COMPLETED")
                orders.append(order)
                tasks.append(asyncio.create_task(place(client, target, order, deadline)))

        offering = asyncio.create_task(offer())
        while not offering.done() or any(not t.done() for t in tasks):
            await asyncio.sleep(1.0)
            for name, (_, rss) in sample(target.groups).items():
                peak[name] = max(peak.get(name, 0), rss)
            done = [o for o in orders if o.ended_at is not None]
            p50 = percentile([o.latency for o in done], 0.5)
            say(
                f"{label}: {time.time() - start:5.1f}s  placed {len(orders):4d}/{count}  ended {len(done):4d}  "
                f"in flight {len(orders) - len(done) - sum(1 for o in orders if o.error):4d}  "
                f"p50 {p50 if p50 is not None else float('nan'):.2f}s  errors {sum(1 for o in orders if o.error)}"
            )
        await offering
    after = sample(target.groups)

    step.sent = len(orders)
    for order in orders:
        if order.error:
            kind = order.error.split(",")[0]
            step.errors[kind] = step.errors.get(kind, 0) + 1
    finished = [o for o in orders if o.latency is not None]
    latencies = [o.latency for o in finished]
    step.completed = sum(1 for o in finished if o.status == o.expected)
    step.p50, step.p95, step.p99 = (percentile(latencies, q) for q in (0.5, 0.95, 0.99))
    step.max = max(latencies, default=None)
    window_end = start + seconds
    step.throughput = sum(1 for o in finished if o.ended_at <= window_end) / seconds
    step.inflight_growth = backlog_growth(orders, start, window_end)
    step.cpu_ms_per_order = {
        name: round(1000 * (after[name][0] - before[name][0]) / max(1, step.sent), 1) for name in target.groups if name in after
    }
    step.peak_mib = {name: round(rss / 2**20, 1) for name, rss in peak.items()}
    step.sustained = (
        not step.errors and step.p95 is not None and step.p95 < P95_LIMIT and step.inflight_growth <= 0.1 * rate
    )
    return step


def backlog_growth(orders: list[Order], start: float, end: float) -> float:
    """How fast the orders in flight grew, in orders per second: the mean in flight over the
    last third of the window minus that over the middle third, over the time between them. At
    a rate the platform keeps up with, it stays near zero."""
    span = end - start
    if span < 3:
        return 0.0

    def inflight(t: float) -> int:
        return sum(1 for o in orders if o.sent_at <= t and (o.ended_at is None or o.ended_at > t))

    def mean_between(a: float, b: float) -> float:
        points = [a + (b - a) * k / 10 for k in range(11)]
        return mean(inflight(t) for t in points)

    middle = mean_between(start + span / 3, start + 2 * span / 3)
    last = mean_between(start + 2 * span / 3, end)
    return max(0.0, (last - middle) / (span / 3))


async def one_at_a_time(target: Target, count: int, label: str) -> dict:
    """Single orders at idle: each placed once the one before has ended."""
    latencies = []
    errors = 0
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(count):
            order = Order(n=i * 10, sent_at=time.time(), expected="COMPLETED")  # never a declined one
            await place(client, target, order, time.time() + 60)
            if order.error or order.latency is None:
                errors += 1
            else:
                latencies.append(order.latency)
            say(f"{label}: order {i + 1}/{count} {order.status or order.error} in {order.latency or float('nan'):.2f}s")
    return {"orders": count, "errors": errors, "p50": percentile(latencies, 0.5), "max": max(latencies, default=None)}


async def bench_target(target: Target, args: argparse.Namespace) -> dict:
    say(f"--- {target.name}: {target.url} ---")
    await warm_up(target)
    result: dict = {"target": target.name, "idle": await one_at_a_time(target, args.idle_orders, f"{target.name} idle")}
    steps: list[Step] = []
    first = 100_000
    for rate in args.rates:
        for attempt in (1, 2):
            label = f"{target.name} {rate:g}/s" + (" (second try)" if attempt == 2 else "")
            step = await run_step(target, rate, args.step_seconds, drain=args.drain, first=first, label=label)
            step.attempt = attempt
            first += step.sent
            steps.append(step)
            say(
                f"{label}: p50 {fmt(step.p50)} p95 {fmt(step.p95)} p99 {fmt(step.p99)}  "
                f"{step.throughput:.2f} ended/s  errors {step.errors or 0}  "
                f"{'SUSTAINED' if step.sustained else 'not sustained'}"
            )
            if step.sustained or args.smoke:
                break
        if not step.sustained and not args.keep_going:
            break
    result["steps"] = [asdict(s) for s in steps]
    sustained = [s.offered_rate for s in steps if s.sustained]
    result["max_sustained_rate"] = max(sustained, default=0.0)
    if args.soak_seconds:
        soak = await run_step(
            target, args.soak_rate, args.soak_seconds, drain=args.drain, first=first, label=f"{target.name} soak {args.soak_rate:g}/s"
        )
        result["soak"] = asdict(soak)
    return result


async def warm_up(target: Target) -> None:
    """A few orders nobody times: first imports, first connections, first workflow runs."""
    async with httpx.AsyncClient(timeout=30) as client:
        orders = [Order(n=10 * i, sent_at=time.time(), expected="COMPLETED") for i in range(3)]
        await asyncio.gather(*(place(client, target, o, time.time() + 90) for o in orders))
    if any(o.error for o in orders):
        raise SystemExit(f"[bench] {target.name} cannot take orders: {[o.error for o in orders]}")


def fmt(value: float | None) -> str:
    return f"{value:.2f}s" if value is not None else "-"


# --- Starting and stopping what is measured ----------------------------------------------------


def stack(command: str, data: Path, *, only: list[str] | None = None, env: dict | None = None) -> None:
    argv = [*STACK, command, "--data-dir", str(data)] + (["--only", ",".join(only)] if only else [])
    # No trace viewer, so no span is recorded or sent: the figures are the platform's, not the
    # price of watching it (ADR 18). STACK_TRACE_VIEWER=zipkin measures with it.
    subprocess.run(argv, check=True, env={"STACK_TRACE_VIEWER": "off", **os.environ, **(env or {})})


class Floor:
    """The floor's processes, each in its own process group, like the stack's components."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.groups: dict[str, int] = {}

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        # As the stack launcher runs the services: bytecode cached (Temporal's sandbox imports a
        # workflow's module for every run), under the data dir.
        env = {**os.environ, "PYTHONPATH": str(REPO / "infra" / "bench"), "PYTHONUNBUFFERED": "1",
               "PYTHONPYCACHEPREFIX": str(self.logs.parent / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for context, port in FLOOR_CONTEXTS.items():
            with open(self.logs / f"floor-{context}.log", "ab") as log:
                process = subprocess.Popen(
                    [str(PYTHON), "-m", "concerto_bench.floor", context, "--port", str(port)],
                    stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=REPO,
                )
            self.groups[f"floor-{context}"] = process.pid
        deadline = time.time() + 90
        for context, port in FLOOR_CONTEXTS.items():
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline:
                    self.stop()
                    raise SystemExit(f"[bench] the floor's {context} did not get ready: see {self.logs}/floor-{context}.log")
                time.sleep(0.3)  # polling a readiness probe, with a deadline
        say(f"floor ready ({', '.join(FLOOR_CONTEXTS)})")

    def stop(self) -> None:
        for pgid in self.groups.values():
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        for pgid in self.groups.values():
            while time.time() < deadline and any(g == pgid for g, _, _ in _proc_stats()):
                time.sleep(0.1)
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def platform_target(data: Path, url: str) -> Target:
    headers = {"X-API-Key": os.environ.get("CONCERTO_API_KEY", "dev-key")}
    return Target("platform", url, headers, stack_groups(data, ["kafka", "temporal", *PLATFORM_SERVICES]))


def floor_target(data: Path, floor: Floor) -> Target:
    return Target("floor", f"http://127.0.0.1:{FLOOR_CONTEXTS['edge']}", {}, {**stack_groups(data, ["kafka", "temporal"]), **floor.groups})


def stock_up(url: str) -> None:
    """Enough stock that no step runs out (an out-of-stock order would count as an error)."""
    admin = {"X-API-Key": os.environ.get("CONCERTO_ADMIN_API_KEY", "dev-admin-key")}
    for sku in SKUS:
        answer = httpx.put(f"{url}/api/v1/admin/inventory/{sku}", json={"quantity": 1_000_000}, headers=admin, timeout=10)
        answer.raise_for_status()


async def run(args: argparse.Namespace) -> dict:
    data = args.data_dir.resolve()
    results: dict = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform_module.python_version(), "system": platform_module.platform()},
        "settings": {
            "rates": args.rates, "step_seconds": args.step_seconds, "soak": [args.soak_rate, args.soak_seconds],
            "stack": "running" if args.use_running else "fresh", "p95_limit_seconds": P95_LIMIT,
        },
        "targets": {},
    }
    floor = Floor(data / "logs")
    try:
        if not args.use_running:
            # A fresh stack: the floor runs first, beside Kafka and Temporal only; then the platform.
            subprocess.run([*STACK, "down"], check=False)  # `make up`'s stack uses the same ports
            stack("down", data)
            shutil.rmtree(data, ignore_errors=True)
            stack("up", data, only=["kafka", "temporal"])
        if "floor" in args.targets:
            floor.start()
            results["targets"]["floor"] = await bench_target(floor_target(data, floor), args)
            floor.stop()
        if "platform" in args.targets:
            if not args.use_running:
                # No limit at the edge: the harness is the only client, and it is not abusive.
                stack("up", data, env={"RATE_LIMIT": "100000/second"})
            stock_up(args.gateway_url)
            results["targets"]["platform"] = await bench_target(platform_target(data, args.gateway_url), args)
    finally:
        floor.stop()
        if not args.use_running:
            stack("down", data)
    platform, floor_result = results["targets"].get("platform"), results["targets"].get("floor")
    if platform and floor_result and floor_result["max_sustained_rate"]:
        results["platform_floor_ratio"] = round(platform["max_sustained_rate"] / floor_result["max_sustained_rate"], 2)
    return results


# --- Reporting ---------------------------------------------------------------------------------


def markdown(results: dict) -> str:
    lines = [
        f"Run {results['when']} on {results['machine']['cpus']} CPUs ({results['settings']['stack']} stack), "
        f"steps of {results['settings']['step_seconds']:g} s, 1 order in 10 declined.",
        "",
        "| target | offered/s | ended/s | p50 | p95 | p99 | max | errors | backlog growth/s | sustained |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, target in results["targets"].items():
        for s in target["steps"]:
            lines.append(
                f"| {name} | {s['offered_rate']:g}{' (2nd try)' if s.get('attempt', 1) == 2 else ''} | {s['throughput']:.2f} | {fmt(s['p50'])} | {fmt(s['p95'])} | {fmt(s['p99'])} "
                f"| {fmt(s['max'])} | {sum(s['errors'].values())} | {s['inflight_growth']:.2f} | {'yes' if s['sustained'] else 'no'} |"
            )
    lines += [
        "",
        "unfinished: not terminal when the harness stopped waiting (a step's window plus its drain time).",
    ]
    lines += ["", "| target | highest rate sustained | single order at idle (p50) | soak: rate, p95, errors |", "|---|---|---|---|"]
    for name, target in results["targets"].items():
        soak = target.get("soak")
        soak_text = (
            f"{soak['offered_rate']:g}/s for {soak['seconds']:g} s: p95 {fmt(soak['p95'])}, "
            + (", ".join(f"{count} {kind}" for kind, count in soak["errors"].items()) or "every order ended as it should")
            if soak else "-"
        )
        lines.append(f"| {name} | {target['max_sustained_rate']:g}/s | {fmt(target['idle']['p50'])} | {soak_text} |")
    if "platform_floor_ratio" in results:
        lines += ["", f"Platform/floor throughput ratio: **{results['platform_floor_ratio']}**"]
    for name, target in results["targets"].items():
        best = _reference_step(target)
        if not best:
            continue
        lines += [
            "",
            f"{name}: CPU ms per order and peak memory (MiB) per component, at {best['offered_rate']:g} orders/s",
            "",
            "| component | CPU ms/order | peak MiB |",
            "|---|---|---|",
        ]
        for component, cpu in sorted(best["cpu_ms_per_order"].items(), key=lambda item: -item[1]):
            lines.append(f"| {component} | {cpu:g} | {best['peak_mib'].get(component, 0):g} |")
        lines.append(f"| total | {sum(best['cpu_ms_per_order'].values()):.0f} | {sum(best['peak_mib'].values()):.0f} |")
    return "\n".join(lines) + "\n"


def _reference_step(target: dict) -> dict | None:
    """The step the CPU table describes: the highest sustained rate, else the first step."""
    steps = target["steps"]
    sustained = [s for s in steps if s["sustained"]]
    return (sustained or steps or [None])[-1 if sustained else 0]


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    styles = {"platform": "tab:blue", "floor": "tab:gray"}
    for name, target in results["targets"].items():
        best: dict[float, dict] = {}  # per rate, the better of its tries
        for step in (s for s in target["steps"] if s["p50"] is not None):
            rate = step["offered_rate"]
            if rate not in best or step["p95"] < best[rate]["p95"]:
                best[rate] = step
        steps = [best[rate] for rate in sorted(best)]
        rates = [s["offered_rate"] for s in steps]
        color = styles.get(name, "tab:green")
        axes.plot(rates, [s["p50"] for s in steps], "o-", color=color, label=f"{name} p50")
        axes.plot(rates, [s["p95"] for s in steps], "s--", color=color, label=f"{name} p95")
    axes.axhline(P95_LIMIT, color="tab:red", linewidth=0.8, label=f"p95 limit ({P95_LIMIT:g} s)")
    axes.set_xlabel("offered orders per second")
    axes.set_ylabel("seconds from POST to terminal status")
    axes.set_yscale("log")
    axes.yaxis.set_major_locator(FixedLocator([1, 1.5, 2, 3, 5, 10, 20, 40, 80]))
    axes.yaxis.set_minor_locator(NullLocator())
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g} s"))
    axes.set_title(f"Concerto on {results['machine']['cpus']} cores: latency against offered rate ({results['when'][:10]})")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


def splice(document: Path, table: str, command: str) -> None:
    """Put the table between the markers of docs/benchmarks.md (added at the end if absent)."""
    block = f"{MARK_START}\n```bash\n{command}\n```\n\n{table}{MARK_END}"
    text = document.read_text() if document.exists() else "# Benchmarks\n"
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    document.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description="Concerto's throughput and latency benchmark, beside its floor.")
    parser.add_argument("--use-running", action="store_true", help="use the running stack (make up) instead of a fresh one")
    parser.add_argument("--data-dir", type=Path, help="the stack's data dir (default: .data/bench, or .data with --use-running)")
    parser.add_argument("--gateway-url", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--targets", default="floor,platform", help="floor, platform or both (default)")
    parser.add_argument("--rates", default="1,2,3,3.5,4,4.5,5,6,8,10,12,15", help="offered orders per second, in steps")
    parser.add_argument("--step-seconds", type=float, default=30)
    parser.add_argument("--drain", type=float, default=60, help="seconds a step's last orders get to end")
    parser.add_argument("--idle-orders", type=int, default=5, help="single orders at idle, one after the other")
    parser.add_argument("--soak-rate", type=float, default=5)
    parser.add_argument("--soak-seconds", type=float, default=60, help="0: no soak")
    parser.add_argument("--keep-going", action="store_true", help="climb past the first rate not sustained")
    parser.add_argument("--smoke", action="store_true", help="a few seconds of everything, for `make test`")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "bench", help="results.json and latency.png")
    parser.add_argument("--markdown", type=Path, help="the document the table goes in (default: docs/benchmarks.md)")
    args = parser.parse_args()
    if args.smoke:
        args.rates, args.step_seconds, args.drain, args.idle_orders, args.soak_seconds = "2", 3, 30, 1, 0
    args.rates = [float(r) for r in args.rates.split(",")]
    args.targets = [t.strip() for t in args.targets.split(",")]
    args.data_dir = args.data_dir or REPO / (".data" if args.use_running else ".data/bench")
    args.markdown = args.markdown or (args.out_dir / "benchmarks.md" if args.smoke else REPO / "docs" / "benchmarks.md")

    results = asyncio.run(run(args))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out_dir / "latency.png")
    table = markdown(results)
    splice(args.markdown, table, "make bench" if not args.smoke else " ".join(["python -m concerto_bench.bench", *sys.argv[1:]]))
    print(table)
    say(f"results: {args.out_dir / 'results.json'}, plot: {args.out_dir / 'latency.png'}, table: {args.markdown}")


if __name__ == "__main__":
    main()
