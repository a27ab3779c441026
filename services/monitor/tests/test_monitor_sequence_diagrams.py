"""The sequence diagrams are walked from the saga definition, and the docs hold what the code
draws: a test fails, saying which command to run, when a checked-in diagram is stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from concerto_contracts.events import EVENT_TYPES
from concerto_monitor.domain import diagram
from concerto_monitor.domain.definition import ORDER_SAGA
from concerto_monitor.domain.diagram import (
    BETWEEN_STEPS,
    COMMAND,
    COMPENSATIONS,
    HAPPY_PATH,
    PAGES,
    PATHS,
    render,
    sequence,
    stale_pages,
    walk,
)

ROOT = Path(__file__).resolve().parents[3]
EVENT_NAMES = {cls.__name__ for cls in EVENT_TYPES.values()}
SAGA_EVENTS = {e for step in ORDER_SAGA.steps for e in (*step.expects, *step.follows)}


def events_in(path) -> list[str]:
    """The events of a path, in the order drawn (each once)."""
    drawn = [line.split(": ", 1)[1] for line in walk(path) if "-)" in line]
    return list(dict.fromkeys(drawn))


# --- the docs are up to date ----------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_the_generated_sections_in_the_docs_match_the_code(page):
    text = (ROOT / page).read_text()
    assert render(page, text) == text, f"{page}: its generated diagrams are stale: run `{COMMAND}`"


def test_stale_pages_names_a_stale_page(tmp_path):
    for page in PAGES:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text((ROOT / page).read_text())
    assert stale_pages(tmp_path) == []
    saga_md = tmp_path / "docs/saga.md"
    saga_md.write_text(saga_md.read_text().replace("PaymentRefunded", "PaymentReturned"))
    assert stale_pages(tmp_path) == ["docs/saga.md"]
    assert diagram.main(["--check", "--root", str(tmp_path)]) == 1
    assert diagram.main(["--write", "--root", str(tmp_path)]) == 0
    assert stale_pages(tmp_path) == []


def test_a_page_without_its_markers_is_refused():
    with pytest.raises(ValueError, match="no markers for sequence-happy-path"):
        render("README.md", "# Concerto\n")


# --- what the diagrams say ------------------------------------------------------------------


def test_the_explicit_tables_name_only_real_events():
    """What cannot be derived is a small table: its names must exist, or the diagrams lie."""
    for after, also in BETWEEN_STEPS.items():
        assert after in SAGA_EVENTS, f"BETWEEN_STEPS: {after} is no event of the saga definition"
        assert set(also) <= EVENT_NAMES, f"BETWEEN_STEPS: {also} are not all events of concerto_contracts"
    step_names = {step.name for step in ORDER_SAGA.steps}
    for path in PATHS:
        assert set(path.answers) <= step_names, path
        for step, event in path.answers.items():
            assert any(event in s.expects for s in ORDER_SAGA.steps if s.name == step), (step, event)
        assert path.silent is None or path.silent in step_names, path
        assert path.cancel_after is None or path.cancel_after in SAGA_EVENTS, path


def test_the_happy_path_goes_forward_to_completion():
    events = events_in(HAPPY_PATH)
    forward = [e for step in ORDER_SAGA.steps if not step.compensation for e in step.expects[:1]]
    assert [e for e in events if e in SAGA_EVENTS] == [ORDER_SAGA.started_by, *forward]
    assert "OrderReadyToShip" in events
    assert walk(HAPPY_PATH)[-1] == "Note over monitor: saga COMPLETED"


def test_each_event_is_drawn_from_the_context_that_publishes_it():
    text = sequence(HAPPY_PATH)
    assert "order-)payment: OrderConfirmed" in text
    assert "payment-)fulfillment: PaymentCompleted" in text and "payment-)loyalty: PaymentCompleted" in text
    assert "fulfillment-)order: ShipmentDispatched" in text
    assert "loyalty-)monitor: PointsAwarded" in text  # nobody but the monitor acts on it


@pytest.mark.parametrize(
    ("name", "expected", "absent"),
    [
        ("payment-declined", ["PaymentFailed", "OrderCancelled"], ["PaymentRefunded", "InventoryReserved"]),
        ("out-of-stock", ["InventoryUnavailable", "OrderCancelled", "PaymentRefunded", "PointsReversed"], ["FulfillmentCancelled"]),
        ("saga-timeout", ["SagaTimedOut", "CompensationRequested", "OrderCancelled", "PaymentRefunded", "FulfillmentCancelled", "PointsReversed"], ["InventoryReserved"]),
        ("customer-cancellation", ["InventoryReserved", "OrderCancelled", "PaymentRefunded", "FulfillmentCancelled", "PointsReversed"], ["ShipmentScheduled"]),
    ],
)
def test_each_way_back_compensates_what_was_done(name, expected, absent):
    path = next(p for p in COMPENSATIONS if p.name == name)
    events = events_in(path)
    assert set(expected) <= set(events), events
    assert not set(absent) & set(events), events
    assert ORDER_SAGA.completed_by not in events
    assert walk(path)[-1] == "Note over monitor: saga COMPENSATED"


def test_a_timeout_past_the_pivot_asks_for_no_compensation():
    past_pivot = diagram.SagaPath("x", "x", "x", silent="completion")
    lines = walk(past_pivot)
    assert "monitor-)monitor: SagaTimedOut" in lines
    assert not any("CompensationRequested" in line for line in lines)
    assert lines[-1] == "Note over monitor: saga STUCK"
