"""docs/saga.md is drawn from the saga definition: it must say what the code does."""

from pathlib import Path

from concerto_monitor.domain.definition import ORDER_SAGA
from concerto_monitor.domain.diagram import document

SAGA_MD = Path(__file__).resolve().parents[3] / "docs" / "saga.md"


def test_the_saga_diagram_in_docs_matches_the_definition():
    assert SAGA_MD.exists(), "docs/saga.md is missing: run `.venv/bin/python -m concerto_monitor.domain.diagram > docs/saga.md`"
    assert SAGA_MD.read_text() == document(), "docs/saga.md is stale: run `.venv/bin/python -m concerto_monitor.domain.diagram > docs/saga.md`"


def test_the_diagram_draws_every_step_and_marks_the_pivot():
    text = document()
    for step in ORDER_SAGA.steps:
        assert f"|{step.name}, " in text
    assert "ShipmentDispatched:::pivot" in text
