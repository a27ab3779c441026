"""The Grafana dashboards and their plumbing, read statically: every dashboard is tidy Grafana JSON
on a provisioned datasource, every PromQL expression parses, and every metric it names is in the
catalogue the services expose (docs/metrics.md); Prometheus scrapes every service, every replica,
with exemplars kept, and Grafana links an exemplar's trace_id to Jaeger.

No Grafana, Prometheus or Docker is needed. tests/e2e/test_e2e_metrics.py checks the same names
against the /metrics of a running stack (and reuses `dashboard_metrics` from here)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Iterator

import promql_parser
import pytest
import yaml

from concerto_runtime.testing import load_module

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "infra" / "grafana" / "dashboards"
PROVISIONING = REPO / "infra" / "grafana" / "provisioning"
CATALOGUE = REPO / "docs" / "metrics.md"
PROMETHEUS_CONFIG = REPO / "infra" / "prometheus" / "prometheus.yml"
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())

# Made by Prometheus for every target it scrapes, served by no service.
PROMETHEUS_SYNTHETIC = {"up"}
# What Grafana puts in an expression before Prometheus sees it: any duration does to parse it.
GRAFANA_VARIABLE = re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}")
# The services that serve the catalogue on GET /metrics ("every service, the gateway and the saga
# monitor"), by their launcher and compose names. The PSP simulators and the dev issuer stand in
# for systems outside the platform and are not scraped.
SCRAPED = ("order", "payment", "fulfillment", "loyalty", "monitor", "gateway")


def load_stack():
    """infra/devstack/stack.py (standard library only), for its SERVICES table and environment()."""
    return load_module("concerto_devstack", REPO / "infra" / "devstack" / "stack.py")


# --- the catalogue --------------------------------------------------------------------------

CELL_NAME = re.compile(r"^`(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)`$")
# A metric named in prose (the Temporal SDK's, the process figures): a backticked name ending in a
# unit or _total, so labels (`namespace`, `task_queue`) and prefixes (`temporal_`) are not taken.
PROSE_NAME = re.compile(r"`(?P<name>[a-z][a-z0-9_]*_(?:total|seconds|bytes))`")


def catalogue(text: str | None = None) -> dict[str, dict[str, str]]:
    """docs/metrics.md's metrics: name -> {type, section, served_by, labels}. The tables give the
    type; a name only in prose is a counter if it ends in _total, a histogram if in _seconds (the
    Temporal SDK reports every latency as a histogram), else a gauge."""
    text = CATALOGUE.read_text() if text is None else text
    found: dict[str, dict[str, str]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
        if len(cells) >= 4 and (match := CELL_NAME.match(cells[0])):
            found[match["name"]] = {"type": cells[1], "labels": cells[2], "served_by": cells[3], "section": section}
            continue
        for match in PROSE_NAME.finditer(line):
            name = match["name"]
            kind = "counter" if name.endswith("_total") else "histogram" if name.endswith("_seconds") else "gauge"
            found.setdefault(name, {"type": kind, "labels": "", "served_by": "", "section": section})
    return found


def series_names(metrics: dict[str, dict[str, str]]) -> set[str]:
    """The names a query may select: a histogram's as _bucket, _sum and _count."""
    names = set()
    for name, entry in metrics.items():
        if entry["type"] == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


# --- the dashboards -------------------------------------------------------------------------


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def promql(expr: str) -> str:
    """The expression as Prometheus gets it, Grafana's interval variables filled in."""
    return GRAFANA_VARIABLE.sub("5m", expr)


def selected_metrics(expr: str) -> set[str]:
    """The metric names an expression selects, from its syntax tree (vector selectors, those
    inside range selectors and subqueries too; `{__name__="x"}` counts as x)."""
    names: set[str] = set()

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            by_matcher = [m for m in node.matchers.matchers if m.name == "__name__"]
            if node.name:
                names.add(node.name)
            for matcher in by_matcher:
                assert matcher.op == promql_parser.MatchOp.Equal, f"a dashboard names its metrics, no pattern: {node}"
                names.add(matcher.value)
            assert node.name or by_matcher, f"a selector without a metric name: {node}"

    promql_parser.walk(promql_parser.parse(promql(expr)), pre_visit=visit)
    return names


def dashboard_metrics(boards: dict[str, dict[str, Any]] | None = None) -> dict[str, set[str]]:
    """Every metric name the dashboards select -> where ("business.json: Orders per second")."""
    used: dict[str, set[str]] = {}
    for file, dashboard in (dashboards() if boards is None else boards).items():
        for panel, target in queries(dashboard):
            for name in selected_metrics(target["expr"]):
                used.setdefault(name, set()).add(f"{file}: {panel['title']}")
    return used


def unknown_metrics(boards: dict[str, dict[str, Any]], metrics: dict[str, dict[str, str]]) -> dict[str, set[str]]:
    known = series_names(metrics) | PROMETHEUS_SYNTHETIC
    return {name: where for name, where in dashboard_metrics(boards).items() if name not in known}


def provisioned_datasources() -> list[dict[str, Any]]:
    return [
        source
        for path in sorted((PROVISIONING / "datasources").glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text()).get("datasources", [])
    ]


def datasource(uid: str) -> dict[str, Any]:
    [found] = [source for source in provisioned_datasources() if source["uid"] == uid]
    return found


BOARDS = dashboards()
QUERIES = [
    pytest.param(target["expr"], id=f"{file}:{panel['title']}:{target['refId']}")
    for file, dashboard in BOARDS.items()
    for panel, target in queries(dashboard)
]


# --- the tests ------------------------------------------------------------------------------


def test_there_are_the_business_and_the_plumbing_dashboards():
    assert {"business.json", "plumbing.json"} <= set(BOARDS)
    uids = [dashboard["uid"] for dashboard in BOARDS.values()]
    assert len(uids) == len(set(uids)), f"two dashboards share a uid: {uids}"


@pytest.mark.parametrize("file", sorted(BOARDS))
def test_every_dashboard_is_tidy_grafana_json(file):
    dashboard = BOARDS[file]
    assert dashboard.get("title") and dashboard.get("uid")
    assert isinstance(dashboard.get("schemaVersion"), int) and dashboard["schemaVersion"] >= 36
    ids = [panel.get("id") for panel in panels(dashboard)]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), f"panel ids are not unique: {ids}"
    taken: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        where = f"{file}: panel {panel.get('title')!r}"
        assert panel.get("type") and panel.get("title"), where
        grid = panel.get("gridPos") or {}
        assert all(isinstance(grid.get(k), int) for k in "hwxy"), f"{where}: gridPos {grid}"
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"{where}: gridPos {grid}"
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & taken, f"{where} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        targets = panel.get("targets") or []
        assert targets, f"{where} has no query"
        ref_ids = [target.get("refId") for target in targets]
        assert all(ref_ids) and len(ref_ids) == len(set(ref_ids)), f"{where}: refIds {ref_ids}"
        assert all(target.get("expr", "").strip() for target in targets), f"{where}: a query without expr"


def test_every_panel_uses_a_provisioned_datasource():
    provisioned = {source["uid"]: source["type"] for source in provisioned_datasources()}
    for file, dashboard in BOARDS.items():
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            for source in [panel.get("datasource"), *(t.get("datasource") for t in panel.get("targets", []))]:
                # Named, not left to whatever the default is, so a new default cannot change a panel.
                assert isinstance(source, dict), f"{file}: {panel['title']!r} names no datasource"
                assert provisioned.get(source.get("uid")) == source.get("type"), (
                    f"{file}: {panel['title']!r} uses datasource {source}, provisioned: {provisioned}"
                )


@pytest.mark.parametrize("expr", QUERIES)
def test_every_expression_parses(expr):
    promql_parser.parse(promql(expr))  # raises ValueError with the parser's message


def test_every_metric_a_dashboard_uses_is_in_the_catalogue():
    metrics = catalogue()
    assert not unknown_metrics(BOARDS, metrics), (
        f"metrics the services do not expose (docs/metrics.md): {unknown_metrics(BOARDS, metrics)}"
    )


def test_a_misspelt_metric_or_a_broken_expression_is_caught():
    metrics = catalogue()
    boards = copy.deepcopy(BOARDS)
    panel, target = next(
        (panel, target) for panel, target in queries(boards["business.json"]) if "concerto_orders_placed_total" in target["expr"]
    )
    target["expr"] = target["expr"].replace("concerto_orders_placed_total", "concerto_order_placed_total")
    assert unknown_metrics(boards, metrics) == {"concerto_order_placed_total": {f"business.json: {panel['title']}"}}
    # A histogram is selected by its series, not its name.
    target["expr"] = "sum(rate(concerto_saga_duration_seconds[5m]))"
    assert set(unknown_metrics(boards, metrics)) == {"concerto_saga_duration_seconds"}
    target["expr"] = "sum(rate(concerto_orders_placed_total[5m])"
    with pytest.raises(ValueError):
        promql_parser.parse(promql(target["expr"]))


def test_the_catalogue_is_read_whole():
    metrics = catalogue()
    assert metrics["concerto_saga_duration_seconds"]["type"] == "histogram"
    assert metrics["http_request_duration_seconds"]["type"] == "histogram"
    assert metrics["concerto_orders_cancelled_total"] == {
        "type": "counter", "labels": "`reason`", "served_by": "order", "section": "Business figures",
    }
    assert {"temporal_workflow_completed_total", "temporal_request_total"} <= set(metrics)
    assert metrics["temporal_workflow_task_schedule_to_start_latency_seconds"]["type"] == "histogram"
    assert metrics["process_resident_memory_bytes"]["type"] == "gauge"
    assert not {"namespace", "task_queue", "temporal_", "trace_id"} & set(metrics), "labels are not metrics"
    assert len([m for m in metrics.values() if m["section"] == "Business figures"]) >= 9


@pytest.mark.parametrize(("file", "section"), [("business.json", "Business figures"), ("plumbing.json", "Plumbing")])
def test_every_figure_in_the_catalogue_has_a_panel(file, section):
    metrics = {name: entry for name, entry in catalogue().items() if entry["section"] == section}
    shown = set(dashboard_metrics({file: BOARDS[file]}))
    missing = {name for name in metrics if not series_names({name: metrics[name]}) & shown}
    assert not missing, f"{file} shows nothing of {sorted(missing)}"
    temporal = {name for name in dashboard_metrics() if name.startswith("temporal_")}
    assert {"temporal_workflow_task_schedule_to_start_latency_seconds_bucket", "temporal_workflow_completed_total"} <= temporal


def test_a_slow_saga_links_to_its_trace():
    # The panel asks Prometheus for the saga duration's exemplars...
    saga_targets = [
        target for dashboard in BOARDS.values() for _, target in queries(dashboard)
        if "concerto_saga_duration_seconds_bucket" in selected_metrics(target["expr"])
    ]
    assert any(target.get("exemplar") is True for target in saga_targets), "no saga duration query shows exemplars"
    # ... which carry the order's trace_id (the catalogue's promise) ...
    saga_row = next(line for line in CATALOGUE.read_text().splitlines() if "`concerto_saga_duration_seconds`" in line)
    assert "`trace_id`" in saga_row and "exemplar" in saga_row
    # ... and Grafana opens that trace in the provisioned Jaeger datasource.
    prometheus = datasource("prometheus")
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    internal = [d for d in destinations if d.get("datasourceUid")]
    assert internal and all(d["name"] == "trace_id" for d in destinations), destinations
    assert datasource(internal[0]["datasourceUid"])["type"] == "jaeger"
    compose_args = COMPOSE["services"]["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in compose_args, "Prometheus drops exemplars without it"


def test_grafana_is_provisioned_from_the_repository():
    sources = provisioned_datasources()
    assert [source["uid"] for source in sources if source.get("isDefault")] == ["prometheus"]
    assert datasource("prometheus")["url"] == "http://prometheus:9090"
    assert datasource("jaeger")["url"] == "http://jaeger:16686"
    assert {"prometheus", "jaeger"} <= set(COMPOSE["services"])
    mounts = dict(
        volume.split(":")[:2] for volume in COMPOSE["services"]["grafana"]["volumes"] if volume.startswith("./")
    )
    assert mounts["./infra/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = [
        provider
        for path in sorted((PROVISIONING / "dashboards").glob("*.y*ml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    assert [provider["options"]["path"] for provider in providers] == [mounts["./infra/grafana/dashboards"]]


def test_prometheus_scrapes_every_replica_of_every_service():
    stack = load_stack()
    ports = {name: port for name, port, _ in stack.SERVICES}
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(SCRAPED)
    for name in SCRAPED:
        assert name in COMPOSE["services"], f"{name} is no compose service"
        assert COMPOSE["services"][name]["environment"]["HTTP_PORT"] == ports[name]
        # By DNS, one A record per container: every replica (REPLICAS=2) is a target of its own.
        [discovery] = jobs[name]["dns_sd_configs"]
        assert discovery == {**discovery, "names": [name], "type": "A", "port": ports[name]}, discovery
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"
    assert "OpenMetricsText1.0.0" == config["global"]["scrape_protocols"][0], "exemplars travel in OpenMetrics only"
    mounts = dict(volume.split(":")[:2] for volume in COMPOSE["services"]["prometheus"]["volumes"] if volume.startswith("./"))
    config_file = next(arg.split("=", 1)[1] for arg in COMPOSE["services"]["prometheus"]["command"] if arg.startswith("--config.file="))
    assert mounts["./infra/prometheus/prometheus.yml"] == config_file
