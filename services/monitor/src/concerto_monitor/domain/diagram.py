"""The order saga as a picture: a Mermaid flowchart (GitHub renders it) and a table, both drawn
from the saga definition the monitor runs on, so the docs cannot drift from the code.

    .venv/bin/python -m concerto_monitor.domain.diagram > docs/saga.md
"""

from __future__ import annotations

from concerto_monitor.domain.definition import ORDER_SAGA, SagaDefinition, Step


def _deadline(step: Step) -> str:
    return "optional" if step.optional else f"{step.deadline_seconds} s"


def flowchart(saga: SagaDefinition) -> str:
    lines = ["flowchart TD"]
    for step in saga.steps:
        arrow = "-.->" if step.compensation or step.optional else "-->"
        source = step.follows[-1]  # the event that usually comes last of those it follows
        # On the way back, an alternative that is a step forward (PaymentFailed: nothing was
        # taken) was already drawn on the way forward.
        shown = [e for e in step.expects if not (step.compensation and e in saga.forward_events)] or step.expects
        for event in shown:
            lines.append(f"    {source} {arrow}|{step.name}, {_deadline(step)}| {event}")
    pivot = next(event for step in saga.steps if step.pivot for event in step.expects)
    lines += [
        f"    {pivot}:::pivot",
        f"    {saga.completed_by}:::done",
        f"    {saga.cancelled_by}:::back",
        "    classDef pivot fill:#fde68a,stroke:#b45309,stroke-width:3px",
        "    classDef done fill:#bbf7d0,stroke:#15803d",
        "    classDef back fill:#fecaca,stroke:#b91c1c",
    ]
    return "\n".join(lines)


def table(saga: SagaDefinition) -> str:
    rows = [
        "| step | expects (any of) | after (all of) | owed by | deadline | kind |",
        "|---|---|---|---|---|---|",
    ]
    for step in saga.steps:
        kind = "compensation" if step.compensation else ("**pivot**" if step.pivot else "forward")
        if not step.compensable:
            kind += ", not compensable"
        rows.append(
            f"| {step.name} | {', '.join(step.expects)} | {', '.join(step.follows)} | {step.owner} | {_deadline(step)} | {kind} |"
        )
    return "\n".join(rows)


def document(saga: SagaDefinition = ORDER_SAGA) -> str:
    return f"""# The order saga

Generated from `services/monitor/src/concerto_monitor/domain/definition.py` by
`.venv/bin/python -m concerto_monitor.domain.diagram > docs/saga.md`; a test fails when this page
and the code disagree. The saga monitor runs on the same definition: it expects each step once
the events it follows have been seen, and declares the saga STUCK when a deadline passes
(deadlines are the defaults; `SAGA_DEADLINE_<STEP>` sets one in seconds).

Solid arrows are the way forward, dotted ones the way back (each context undoing its part) or
an optional step the saga does not wait for. The pivot, **{next(e for s in saga.steps if s.pivot for e in s.expects)}**,
is the point of no return: a timeout before it makes the monitor publish CompensationRequested
and the order context cancel (`saga_timeout`); a timeout after it (or after ShipmentScheduled,
when the order context already refuses to cancel, ADR 5) leaves the saga STUCK for an operator.

```mermaid
{flowchart(saga)}
```

{table(saga)}
"""


if __name__ == "__main__":
    print(document(), end="")
