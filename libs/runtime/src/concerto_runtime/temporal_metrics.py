"""The Temporal SDK's own metrics (its Rust core's: polls, task latencies, workflow completions)
in the service's prometheus-client registry, so one `/metrics` shows them beside ours.

The core can serve Prometheus itself, but on a port of its own; instead it records into a
MetricBuffer, which `drain()` empties into plain series here. Counter updates are increments,
gauge updates the new value, histogram updates one observation each.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

from concerto_observability.metrics import DURATION_BUCKETS

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Series:
    kind: int
    description: str
    seconds: bool
    values: dict[Labels, float] = field(default_factory=dict)  # counters and gauges
    buckets: dict[Labels, list[int]] = field(default_factory=dict)  # histograms: count per bucket
    sums: dict[Labels, float] = field(default_factory=dict)


class TemporalMetrics:
    """A prometheus-client collector fed from the core's buffer."""

    def __init__(self) -> None:
        self.buffer = MetricBuffer(100_000, MetricBufferDurationFormat.SECONDS)
        self.runtime = Runtime(telemetry=TelemetryConfig(metrics=self.buffer))
        self._series: dict[str, _Series] = {}
        REGISTRY.register(self)

    def describe(self) -> list[Metric]:
        return []  # the names are known only once the core has recorded something

    def drain(self) -> None:
        for update in self.buffer.retrieve_updates():
            metric = update.metric
            series = self._series.setdefault(metric.name, _Series(metric.kind, metric.description, metric.unit == "s"))
            labels = tuple(sorted((name, str(value)) for name, value in update.attributes.items() if name != "service_name"))
            if metric.kind == BUFFERED_METRIC_KIND_COUNTER:
                series.values[labels] = series.values.get(labels, 0) + update.value
            elif metric.kind == BUFFERED_METRIC_KIND_GAUGE:
                series.values[labels] = update.value
            else:
                counts = series.buckets.setdefault(labels, [0] * (len(DURATION_BUCKETS) + 1))
                counts[bisect.bisect_left(DURATION_BUCKETS, update.value)] += 1
                series.sums[labels] = series.sums.get(labels, 0) + update.value

    async def drain_forever(self, every: float = 2) -> None:
        # The buffer is bounded: empty it on time even when nobody scrapes.
        while True:
            self.drain()
            await asyncio.sleep(every)

    def collect(self) -> Iterator[Metric]:
        self.drain()
        for name, series in sorted(self._series.items()):
            if series.kind == BUFFERED_METRIC_KIND_COUNTER:
                family = Metric(name, series.description, "counter")
                for labels, value in series.values.items():
                    family.add_sample(f"{name}_total", dict(labels), value)
            elif series.kind == BUFFERED_METRIC_KIND_GAUGE:
                family = Metric(name, series.description, "gauge")
                for labels, value in series.values.items():
                    family.add_sample(name, dict(labels), value)
            else:
                name = f"{name}_seconds" if series.seconds else name
                family = Metric(name, series.description, "histogram")
                for labels, counts in series.buckets.items():
                    cumulative = 0
                    for bound, count in zip([*DURATION_BUCKETS, float("inf")], counts):
                        cumulative += count
                        family.add_sample(f"{name}_bucket", {**dict(labels), "le": _bound(bound)}, cumulative)
                    family.add_sample(f"{name}_count", dict(labels), cumulative)
                    family.add_sample(f"{name}_sum", dict(labels), series.sums[labels])
            yield family


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


_metrics: TemporalMetrics | None = None


def temporal_metrics() -> TemporalMetrics:
    """The process's one Temporal runtime, recording into the registry."""
    global _metrics
    if _metrics is None:
        _metrics = TemporalMetrics()
    return _metrics
