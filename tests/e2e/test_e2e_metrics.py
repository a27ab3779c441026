"""The metrics from the outside: after a few orders through the gateway, every service's GET /metrics
serves what docs/metrics.md promises and every metric the Grafana dashboards query
(infra/grafana/dashboards/), the business figures move with the orders, and the saga duration
carries a trace_id exemplar for Grafana to link to Jaeger.

The services are scraped directly, where the test stack runs them (infra/devstack/stack.py's
SERVICES; every instance when it runs replicas), as Prometheus scrapes them in docker-compose.yml.
The names the dashboards use come from tests/deployment/test_dashboards.py, the same walk of their
PromQL that checks them against the catalogue statically."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from concerto_runtime.testing import eventually, load_module

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8080").rstrip("/")
STACK_DATA_DIR = os.environ.get("STACK_DATA_DIR")
APPROVED, DECLINED = "tok_visa", "tok_chargeDeclined"
COMPLETED_ORDERS = 3
# How long after an order ends its figures may take to show: loyalty awards its points on the
# completion event, and the Temporal SDK's figures are drained every couple of seconds.
SETTLE = 30.0
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


stack = load_module("concerto_devstack", REPO / "infra" / "devstack" / "stack.py")
dashboards = load_module("concerto_dashboard_checks", REPO / "tests" / "deployment" / "test_dashboards.py")


def instance_urls(service: str) -> list[str]:
    """Every instance of a service: <NAME>_SERVICE_URL if given (comma-separated, as the gateway
    takes it), else the launcher's ports on this machine, replicas included."""
    if service == "gateway":
        return [GATEWAY_URL]
    given = os.environ.get(f"{service.upper()}_SERVICE_URL")
    if given:
        return [url.strip().rstrip("/") for url in given.split(",") if url.strip()]
    replicas = stack.replicas_of(Path(STACK_DATA_DIR)) if STACK_DATA_DIR else int(os.environ.get("REPLICAS", "1"))
    return [
        f"http://127.0.0.1:{port}"
        for instance, port, _ in stack.service_instances(replicas)
        if stack.service_of(instance) == service
    ]


@dataclass
class Exposition:
    """One service's /metrics, over all its instances."""

    families: dict[str, str] = field(default_factory=dict)  # family name -> type
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    @property
    def names(self) -> set[str]:
        """Every series name served, and those a declared family would serve (a labelled counter
        nothing has counted yet is declared, with no sample)."""
        names = {name for name, _, _ in self.samples}
        for family, kind in self.families.items():
            names |= {
                "counter": {f"{family}_total"},
                "histogram": {f"{family}_bucket", f"{family}_sum", f"{family}_count"},
                "summary": {family, f"{family}_sum", f"{family}_count"},
            }.get(kind, {family})
        return names

    def total(self, name: str, **labels: str) -> float:
        """The sum over instances and other labels of the samples called `name` with these labels."""
        return sum(
            value for sample, sample_labels, value in self.samples
            if sample == name and all(sample_labels.get(k) == v for k, v in labels.items())
        )


async def scrape(service: str) -> Exposition:
    exposition = Exposition()
    async with httpx.AsyncClient(timeout=10) as client:
        for url in instance_urls(service):
            response = await client.get(f"{url}/metrics")
            assert response.status_code == 200, f"GET {url}/metrics: {response.status_code} {response.text[:300]}"
            for family in text_string_to_metric_families(response.text):
                exposition.families[family.name] = family.type
                exposition.samples += [(s.name, dict(s.labels), s.value) for s in family.samples]
    return exposition


async def scrape_all() -> dict[str, Exposition]:
    return {service: await scrape(service) for service in dashboards.SCRAPED}


async def orders_through_the_gateway(api) -> dict[str, Any]:
    """A few approved orders and a declined one, each until it ends; what they should count."""
    product = await api.product(prefer="CON-BATON")
    approved = [await api.place(api.body(product["sku"], token=APPROVED)) for _ in range(COMPLETED_ORDERS)]
    declined = await api.place(api.body(product["sku"], token=DECLINED))
    for placed in approved:
        order = await api.terminal(placed.order_id)
        assert order["status"] == "COMPLETED", order
    cancelled = await api.terminal(declined.order_id)
    assert cancelled["status"] == "CANCELLED" and cancelled["cancellation_reason"], cancelled
    return {"reason": cancelled["cancellation_reason"]}


def _where(names: Iterable[str], used: dict[str, set[str]]) -> dict[str, list[str]]:
    return {name: sorted(used[name]) for name in sorted(names)}


# --- the tests ------------------------------------------------------------------------------


async def test_every_metric_the_dashboards_query_is_served(api):
    await orders_through_the_gateway(api)
    used = dashboards.dashboard_metrics()
    wanted = set(used) - dashboards.PROMETHEUS_SYNTHETIC
    assert wanted, "the dashboards query nothing?"
    missing: set[str] = set()

    async def all_served() -> bool:
        served = set().union(*(exposition.names for exposition in (await scrape_all()).values()))
        missing.clear()
        missing.update(wanted - served)
        return not missing

    try:
        await eventually(all_served, timeout=SETTLE, interval=1.0, what="every metric the dashboards query")
    except AssertionError:
        raise AssertionError(
            f"no service serves these, which the dashboards query (metric: panels): {_where(missing, used)}"
        ) from None


async def test_each_figure_of_the_catalogue_is_on_its_service(api):
    await orders_through_the_gateway(api)
    catalogue = dashboards.catalogue()
    expositions = await scrape_all()
    absent = []
    for name, entry in catalogue.items():
        if entry["section"] == "Business figures":
            services = [entry["served_by"]]  # one service each: order, payment, loyalty, monitor
            assert services[0] in expositions, f"{name}: served by {services[0]!r}, which is not scraped"
        elif name.startswith("http_"):
            services = list(expositions)  # every HTTP app
        else:
            continue
        series = dashboards.series_names({name: entry})
        absent += [f"{name} on {service}" for service in services if not series & expositions[service].names]
    assert not absent, f"figures of docs/metrics.md not served where it says: {absent}"


async def test_the_business_figures_count_the_orders(api):
    before = await scrape_all()
    expected = await orders_through_the_gateway(api)
    reason = expected["reason"]
    # (service, series, labels) -> at least how much it must have grown by
    growth = {
        ("order", "concerto_orders_placed_total", ()): COMPLETED_ORDERS + 1,
        ("order", "concerto_orders_completed_total", ()): COMPLETED_ORDERS,
        ("order", "concerto_orders_cancelled_total", (("reason", reason),)): 1,
        ("order", "concerto_saga_duration_seconds_count", (("outcome", "completed"),)): COMPLETED_ORDERS,
        ("order", "concerto_saga_duration_seconds_count", (("outcome", "cancelled"),)): 1,
        ("payment", "concerto_payments_total", (("outcome", "approved"),)): COMPLETED_ORDERS,
        ("payment", "concerto_payments_total", (("outcome", "declined"),)): 1,
        ("loyalty", "concerto_points_awarded_total", ()): 1,
    }
    short: dict[str, str] = {}

    async def counted() -> bool:
        after = await scrape_all()
        short.clear()
        for (service, name, labels), least in growth.items():
            grew = after[service].total(name, **dict(labels)) - before[service].total(name, **dict(labels))
            if grew < least:
                short[f"{service}: {name}{dict(labels)}"] = f"grew by {grew}, expected at least {least}"
        return not short

    try:
        await eventually(counted, timeout=SETTLE, interval=1.0, what="the figures to count the orders")
    except AssertionError:
        raise AssertionError(f"the figures did not count the orders: {short}") from None


async def test_the_saga_duration_carries_a_trace_id_exemplar(api):
    await orders_through_the_gateway(api)
    exemplars = []
    async with httpx.AsyncClient(timeout=10) as client:
        for url in instance_urls("order"):
            # As Prometheus asks: only OpenMetrics carries exemplars.
            response = await client.get(f"{url}/metrics", headers={"Accept": OPENMETRICS})
            assert response.status_code == 200, response.text[:300]
            assert response.headers["content-type"].startswith("application/openmetrics-text"), response.headers
            exemplars += [
                sample.exemplar
                for family in openmetrics_families(response.text)
                for sample in family.samples
                if sample.name == "concerto_saga_duration_seconds_bucket" and sample.exemplar
            ]
    assert exemplars, "no bucket of concerto_saga_duration_seconds has an exemplar"
    trace_ids = {exemplar.labels.get("trace_id", "") for exemplar in exemplars}
    assert all(TRACE_ID.match(trace_id) and set(trace_id) != {"0"} for trace_id in trace_ids), trace_ids
