"""What SagaWatch and its activity pass each other."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

TASK_QUEUE = "monitor"


def watch_workflow_id(order_id: str) -> str:
    return f"saga-watch-{order_id}"


class WatchUpdate(BaseModel):
    """Set the timer: `deadline` for `step`, or no timer (None) once the saga waits for nothing.
    `version` grows with every change to the saga, so an older update never wins."""

    version: int
    step: str | None = None
    deadline: datetime | None = None
