"""docs/saga.md's flowchart and table are drawn from the saga definition (the staleness of every
generated section in the docs is checked in test_monitor_sequence_diagrams.py)."""

from concerto_monitor.domain.definition import ORDER_SAGA
from concerto_monitor.domain.diagram import sections


def test_the_diagram_draws_every_step_and_marks_the_pivot():
    text = sections()["saga-flowchart"]
    for step in ORDER_SAGA.steps:
        assert f"|{step.name}, " in text
    assert "ShipmentDispatched:::pivot" in text
