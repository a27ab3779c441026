"""The console's key figures, from services' /metrics pages: replicas add up, a histogram's
quantile is interpolated the way PromQL's histogram_quantile does it."""

from __future__ import annotations

import pytest

from concerto_gateway.figures import key_figures, quantile

ORDER_REPLICA_1 = """
# TYPE concerto_orders_placed_total counter
concerto_orders_placed_total 7.0
# TYPE concerto_orders_completed_total counter
concerto_orders_completed_total 5.0
# TYPE concerto_orders_cancelled_total counter
concerto_orders_cancelled_total{reason="payment_declined"} 1.0
# TYPE concerto_saga_duration_seconds histogram
concerto_saga_duration_seconds_bucket{le="1.0",outcome="completed"} 1.0
concerto_saga_duration_seconds_bucket{le="2.5",outcome="completed"} 5.0
concerto_saga_duration_seconds_bucket{le="+Inf",outcome="completed"} 5.0
concerto_saga_duration_seconds_count{outcome="completed"} 5.0
concerto_saga_duration_seconds_sum{outcome="completed"} 9.0
# TYPE concerto_outbox_backlog_events gauge
concerto_outbox_backlog_events 2.0
# TYPE concerto_outbox_oldest_unsent_age_seconds gauge
concerto_outbox_oldest_unsent_age_seconds 0.4
# TYPE concerto_consumer_lag_messages gauge
concerto_consumer_lag_messages{group="order-service",partition="0",topic="payment.events.v1"} 3.0
"""
ORDER_REPLICA_2 = """
# TYPE concerto_orders_placed_total counter
concerto_orders_placed_total 3.0
# TYPE concerto_orders_cancelled_total counter
concerto_orders_cancelled_total{reason="payment_declined"} 1.0
concerto_orders_cancelled_total{reason="customer_request"} 1.0
# TYPE concerto_saga_duration_seconds histogram
concerto_saga_duration_seconds_bucket{le="1.0",outcome="cancelled"} 0.0
concerto_saga_duration_seconds_bucket{le="2.5",outcome="cancelled"} 0.0
concerto_saga_duration_seconds_bucket{le="+Inf",outcome="cancelled"} 2.0
concerto_saga_duration_seconds_count{outcome="cancelled"} 2.0
concerto_saga_duration_seconds_sum{outcome="cancelled"} 60.0
# TYPE concerto_outbox_backlog_events gauge
concerto_outbox_backlog_events 1.0
# TYPE concerto_consumer_lag_messages gauge
concerto_consumer_lag_messages{group="order-service",partition="1",topic="payment.events.v1"} 4.0
# TYPE concerto_dead_letters_total counter
concerto_dead_letters_total{group="order-service",reason="undecodable"} 2.0
"""
PAYMENT = """
# TYPE concerto_circuit_breaker_state gauge
concerto_circuit_breaker_state{gateway="cardpay",state="closed"} 0.0
concerto_circuit_breaker_state{gateway="cardpay",state="open"} 1.0
concerto_circuit_breaker_state{gateway="cardpay",state="half_open"} 0.0
concerto_circuit_breaker_state{gateway="paynext",state="closed"} 1.0
concerto_circuit_breaker_state{gateway="paynext",state="open"} 0.0
concerto_circuit_breaker_state{gateway="paynext",state="half_open"} 0.0
# TYPE concerto_outbox_backlog_events gauge
concerto_outbox_backlog_events 0.0
"""


def test_the_replicas_of_a_context_add_up():
    figures = key_figures({"order": [ORDER_REPLICA_1, ORDER_REPLICA_2], "payment": [PAYMENT], "loyalty": None})
    assert (figures.orders_placed, figures.orders_completed, figures.orders_cancelled) == (10, 5, 3)
    assert figures.cancelled_by_reason == {"payment_declined": 2, "customer_request": 1}
    assert figures.consumer_lag == {"order-service": 7}
    assert figures.outbox_backlog == {"order": 3, "payment": 0}
    assert figures.outbox_oldest_unsent_seconds == 0.4
    assert figures.dead_letters == {"order-service": 2}
    assert figures.breakers == {"cardpay": "open", "paynext": "closed"}
    assert figures.unreachable == ["loyalty"]
    # Seven sagas: 1 under 1 s, 4 more under 2.5 s, 2 past the last bound.
    assert figures.saga_seconds_p50 == pytest.approx(1.0 + 1.5 * (3.5 - 1) / 4, abs=1e-3)  # rounded to ms
    assert figures.saga_seconds_p95 == 2.5


def test_quantile_interpolates_inside_the_bucket():
    buckets = {"0.5": 0.0, "1.0": 10.0, "2.0": 20.0, "+Inf": 20.0}
    assert quantile(0.5, buckets) == 1.0
    assert quantile(0.75, buckets) == 1.5
    assert quantile(0.25, buckets) == 0.75
    assert quantile(0.5, {"+Inf": 0.0}) is None
    assert quantile(0.5, {}) is None


def test_nothing_to_read_gives_zeroes_not_an_error():
    figures = key_figures({"order": None, "payment": None})
    assert figures.orders_placed == 0 and figures.saga_seconds_p50 is None
    assert figures.unreachable == ["order", "payment"]
