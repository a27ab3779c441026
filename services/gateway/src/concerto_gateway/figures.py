"""The operator console's key figures, from the same /metrics Prometheus scrapes: the gateway
reads every service's page and adds the replicas up. Without Prometheus (the local stack), this
is where the figures are seen; with it, Grafana shows the same names over time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

from concerto_contracts.http import KeyFigures

Sample = tuple[str, dict[str, str], float]


def key_figures(pages: dict[str, list[str] | None]) -> KeyFigures:
    """`pages`: each service's /metrics texts (one per replica), None for one that did not answer."""
    by_service = {service: [s for text in texts for s in _samples(text)] for service, texts in pages.items() if texts is not None}
    everywhere = [sample for samples in by_service.values() for sample in samples]
    cancelled = _total(everywhere, "concerto_orders_cancelled_total", by="reason")
    saga_buckets = _sums(everywhere, "concerto_saga_duration_seconds_bucket", by="le")
    return KeyFigures(
        orders_placed=sum(_total(everywhere, "concerto_orders_placed_total").values()),
        orders_completed=sum(_total(everywhere, "concerto_orders_completed_total").values()),
        orders_cancelled=sum(cancelled.values()),
        cancelled_by_reason=cancelled,
        saga_seconds_p50=quantile(0.5, saga_buckets),
        saga_seconds_p95=quantile(0.95, saga_buckets),
        sagas_timed_out=sum(_total(everywhere, "concerto_sagas_timed_out_total").values()),
        consumer_lag=_total(everywhere, "concerto_consumer_lag_messages", by="group"),
        outbox_backlog={service: sum(_total(samples, "concerto_outbox_backlog_events").values()) for service, samples in by_service.items()},
        outbox_oldest_unsent_seconds=round(max((v for n, _, v in everywhere if n == "concerto_outbox_oldest_unsent_age_seconds"), default=0.0), 1),
        dead_letters=_total(everywhere, "concerto_dead_letters_total", by="group"),
        breakers={labels["gateway"]: labels["state"] for n, labels, v in everywhere if n == "concerto_circuit_breaker_state" and v == 1},
        unreachable=sorted(service for service, texts in pages.items() if texts is None),
    )


def quantile(q: float, buckets: dict[str, float]) -> float | None:
    """What PromQL's histogram_quantile does: find the bucket, interpolate inside it."""
    bounds = sorted((float(le), count) for le, count in buckets.items())
    if not bounds or bounds[-1][1] == 0:
        return None
    rank = q * bounds[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in bounds:
        if count >= rank:
            if upper == float("inf"):
                return lower  # past the last finite bound: that bound is all anyone knows
            return round(lower + (upper - lower) * (rank - below) / (count - below), 3)
        lower, below = upper, count
    return None


def _sums(samples: list[Sample], name: str, *, by: str | None = None) -> dict[str, float]:
    """The sum of a metric's samples (across replicas and other labels), per value of `by`."""
    sums: dict[str, float] = defaultdict(float)
    for sample_name, labels, value in samples:
        if sample_name == name:
            sums[labels.get(by, "") if by else ""] += value
    return dict(sums)


def _total(samples: list[Sample], name: str, *, by: str | None = None) -> dict[str, int]:
    return {key: int(value) for key, value in _sums(samples, name, by=by).items()}


def _samples(text: str) -> Iterable[Sample]:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, sample.labels, sample.value
