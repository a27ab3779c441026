"""The order saga as pictures, drawn from the code so the docs cannot drift from it:

- a Mermaid flowchart and a table of the steps, from the saga definition the monitor runs on;
- Mermaid sequence diagrams of the happy path and of each way back (GitHub renders both),
  walked with the monitor's own `Saga` rules over that definition: which step is expected
  next, what its owner publishes (`concerto_contracts.events`: each class's `context`), who
  reads it (`concerto_contracts.asyncapi.CONSUMERS`), when a deadline makes the saga STUCK.

They live in the docs between generated-section markers; one command rewrites them all:

    .venv/bin/python -m concerto_monitor.domain.diagram --write    # README.md, docs/walkthrough.md, docs/saga.md
    .venv/bin/python -m concerto_monitor.domain.diagram --check    # exit 1 if any is stale (a test does the same)
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from concerto_contracts.asyncapi import CONSUMERS
from concerto_contracts.events import EVENT_TYPES
from concerto_monitor.domain.definition import ORDER_SAGA, SagaDefinition, Step
from concerto_monitor.domain.saga import Saga


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
        if step.fails_with:
            kind += f"; {' or '.join(step.fails_with)}: COMPENSATION_FAILED, an operator decides"
        rows.append(
            f"| {step.name} | {', '.join(step.expects)} | {', '.join(step.follows)} | {step.owner} | {_deadline(step)} | {kind} |"
        )
    return "\n".join(rows)



# --- sequence diagrams: one order's way through the saga -----------------------------------

# Left to right as an order travels: the caller, the edge, the four contexts, the watcher.
PARTICIPANTS = ("client", "gateway", "order", "payment", "fulfillment", "loyalty", "monitor")

# What the definition cannot say, kept small and explicit (a test checks every name here is
# an event of the definition or of concerto_contracts):
# - the HTTP calls that start an order and cancel one;
# - events the contexts exchange between two steps that the monitor does not wait for: once
#   ShipmentScheduled is known the order context publishes OrderReadyToShip, and fulfillment
#   hands the parcel over only after it (ADR 5).
PLACE_ORDER = (
    "client->>gateway: POST /api/v1/orders",
    "gateway->>order: submit the order (OrderWorkflow starts)",
    "gateway-->>client: 202 PENDING",
)
CANCEL_ORDER = (
    "client->>gateway: POST /api/v1/orders/{id}/cancel",
    "gateway->>order: cancel (OrderWorkflow's update)",
    "gateway-->>client: 202 CANCELLED",
)
BETWEEN_STEPS: dict[str, tuple[str, ...]] = {"ShipmentScheduled": ("OrderReadyToShip",)}
# - an operator's decision on a step its owner refused for good (a refund the gateway refused).
DECIDE_BY_HAND = (
    "client->>gateway: POST /api/v1/admin/payments/{id}/refund/refunded-by-hand (an operator, on the console)",
    "gateway->>payment: refunded by hand: who, when, why (RefundWorkflow's update)",
    "gateway-->>client: 202",
)


@dataclass(frozen=True)
class SagaPath:
    """One way through the saga: what differs from the happy path. Everything else (which step
    comes next, who answers it, what the monitor does) comes from the definition."""

    name: str  # the generated section's name
    title: str
    summary: str
    answers: Mapping[str, str] = field(default_factory=dict)  # step -> the event that answers it (default: its first)
    silent: str | None = None  # a step whose owner stays silent: its deadline passes
    cancel_after: str | None = None  # the customer cancels once this event has been seen
    refused: str | None = None  # a step its owner refuses for good: an operator records it done by hand


HAPPY_PATH = SagaPath("happy-path", "The happy path", "Every step answered in time: the saga is COMPLETED.")
COMPENSATIONS = (
    SagaPath(
        "payment-declined",
        "Payment declined",
        "The card is declined (`tok_chargeDeclined`): nothing was taken, so the order is cancelled and nothing else is undone.",
        answers={"payment": "PaymentFailed"},
    ),
    SagaPath(
        "out-of-stock",
        "Out of stock after payment",
        "Fulfillment cannot reserve the stock: the order is cancelled `out_of_stock`, the card refunded, the points reversed.",
        answers={"reservation": "InventoryUnavailable"},
    ),
    SagaPath(
        "saga-timeout",
        "A saga timeout before the pivot",
        "Fulfillment stays silent (its consumer paused): the reservation's deadline passes, the monitor asks for "
        "compensation, the order is cancelled `saga_timeout`; fulfillment, once back, releases instead of shipping.",
        silent="reservation",
    ),
    SagaPath(
        "customer-cancellation",
        "The customer cancels after payment",
        "The customer cancels before the shipment is scheduled: refund, points reversed, stock released.",
        cancel_after="InventoryReserved",
    ),
    SagaPath(
        "refund-refused",
        "A refund the gateway refuses for good",
        "Out of stock after payment, and the gateway refuses the refund (a 4xx): no retry can help, so the saga is "
        "COMPENSATION_FAILED at once and the console offers the operator two actions, retry the refund or record it "
        "as refunded by hand. Recorded by hand, the refund completes the way back like any other.",
        answers={"reservation": "InventoryUnavailable"},
        refused="refund",
    ),
)
PATHS = (HAPPY_PATH, *COMPENSATIONS)


def publisher(event: str) -> str:
    """The context that publishes an event: its class's `context`."""
    return next(cls.context for cls in EVENT_TYPES.values() if cls.__name__ == event)


def readers(event: str) -> list[str]:
    """The contexts whose consumers act on an event, the monitor aside (it reads them all)."""
    return [ctx for ctx, handled in CONSUMERS.items() if ctx != "monitor" and any(c.__name__ == event for c in handled)]


def _arrows(event: str) -> list[str]:
    # An event nobody else acts on is drawn to the monitor, which reads every one.
    return [f"{publisher(event)}-){reader}: {event}" for reader in readers(event) or ["monitor"]]


def walk(path: SagaPath, saga: SagaDefinition = ORDER_SAGA) -> list[str]:
    """The diagram's lines for one path. The saga advances in waves: every step expected now
    (in the definition's order) is answered, then the silent step's deadline passes, then the
    customer may cancel; until nothing more is expected."""
    seen = Saga(saga, {})  # the monitor's own rules: what is expected next, the saga's status
    start, tick = datetime(2026, 1, 1), itertools.count()  # one event a second, in the order drawn
    lines = [*PLACE_ORDER, "Note over monitor: reads every event of the order"]
    silent_owner = None

    def publish(event: str) -> None:
        if silent_owner == publisher(event):
            lines.append(f"Note over {silent_owner}: back: answers the way back")
        lines.extend(_arrows(event))
        if any(step.pivot and event in step.expects for step in saga.steps):
            lines.append(f"Note over {publisher(event)}: {event} is the pivot: nothing is undone after it")
        seen.record(event, start + timedelta(seconds=next(tick)))
        for also in BETWEEN_STEPS.get(event, ()):
            lines.extend(_arrows(also))

    publish(saga.started_by)
    while True:
        due = sorted(
            (e.step for e in seen.expected() if e.step.name not in seen.timed_out), key=saga.steps.index
        )
        answered = [step for step in due if step.name != path.silent]
        for step in answered:
            if step.name == path.refused:
                publish(step.fails_with[0])
                lines.append(f"Note over monitor: saga {seen.status.value}: an operator decides")
                lines.extend(DECIDE_BY_HAND)
            publish(path.answers.get(step.name, step.expects[0]))
        for step in (step for step in due if step.name == path.silent):
            silent_owner = step.owner
            waited = " or ".join(step.expects)
            lines += [
                f"Note over {step.owner}: silent",
                f"Note over monitor: {step.name}: no {waited} by its deadline ({_deadline(step)}): STUCK",
                "monitor-)monitor: SagaTimedOut",
            ]
            compensable = seen.compensable()
            seen.mark_timed_out(step.name)
            if compensable:
                publish("CompensationRequested")
        if path.cancel_after in seen.seen and saga.cancelled_by not in seen.seen:
            lines += CANCEL_ORDER
            publish(saga.cancelled_by)
            continue
        if not due:
            break
    lines.append(f"Note over monitor: saga {seen.status.value}")
    return lines


def sequence(path: SagaPath, saga: SagaDefinition = ORDER_SAGA) -> str:
    participants = [f"    participant {name}" for name in PARTICIPANTS]
    return "\n".join(["sequenceDiagram", *participants, *(f"    {line}" for line in walk(path, saga))])


def _mermaid(diagram: str) -> str:
    return f"```mermaid\n{diagram}\n```"


# --- the generated sections in the docs ------------------------------------------------------

COMMAND = ".venv/bin/python -m concerto_monitor.domain.diagram --write"


def sections(saga: SagaDefinition = ORDER_SAGA) -> dict[str, str]:
    """Each generated section's text, by name."""
    compensations = "\n\n".join(f"**{p.title}.** {p.summary}\n\n{_mermaid(sequence(p, saga))}" for p in COMPENSATIONS)
    return {
        "saga-flowchart": f"{_mermaid(flowchart(saga))}\n\n{table(saga)}",
        "sequence-happy-path": _mermaid(sequence(HAPPY_PATH, saga)),
        "sequence-compensations": compensations,
    }


# Which page holds which sections (paths from the repository's root).
PAGES = {
    "README.md": ("sequence-happy-path",),
    "docs/walkthrough.md": ("sequence-happy-path", "sequence-compensations"),
    "docs/saga.md": ("saga-flowchart", "sequence-happy-path", "sequence-compensations"),
}

# <!-- generated: NAME ... -->, the section's text, <!-- end generated: NAME -->
SECTION = re.compile(r"(<!-- generated: (?P<name>[\w-]+)[^\n]*-->\n)(?P<body>.*?)(\n<!-- end generated: (?P=name) -->)", re.DOTALL)


def render(page: str, text: str, saga: SagaDefinition = ORDER_SAGA) -> str:
    """The page with its generated sections rewritten; every section it should hold must be there."""
    generated = sections(saga)
    found = [m["name"] for m in SECTION.finditer(text)]
    missing = [name for name in PAGES.get(page, ()) if name not in found]
    unknown = [name for name in found if name not in generated]
    if missing:
        raise ValueError(f"{page}: no markers for {', '.join(missing)} (`<!-- generated: NAME ... -->` ... `<!-- end generated: NAME -->`)")
    if unknown:
        raise ValueError(f"{page}: no generated section is called {', '.join(unknown)}; there are {', '.join(generated)}")
    return SECTION.sub(lambda m: m.group(1) + generated[m["name"]] + m.group(4), text)


def stale_pages(root: Path, saga: SagaDefinition = ORDER_SAGA) -> list[str]:
    return [page for page in PAGES if render(page, (root / page).read_text(), saga) != (root / page).read_text()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the generated sections of " + ", ".join(PAGES))
    action.add_argument("--check", action="store_true", help="exit 1 if any generated section is stale")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository's root (default: here)")
    args = parser.parse_args(argv)
    if args.write:
        for page in PAGES:
            path = args.root / page
            path.write_text(render(page, path.read_text()))
            print(f"wrote {page}")
    elif args.check:
        stale = stale_pages(args.root)
        for page in stale:
            print(f"{page} is stale: run `{COMMAND}`", file=sys.stderr)
        return 1 if stale else 0
    else:
        for name, text in sections().items():
            print(f"<!-- {name} -->\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
