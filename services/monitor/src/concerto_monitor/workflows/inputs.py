"""What SagaWatch and its activity pass each other."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

TASK_QUEUE = "monitor"


# One SagaWatch for all sagas.
WATCH_WORKFLOW_ID = "saga-watch"


class WatchUpdate(BaseModel):
    """Set the timer to `deadline`, the earliest deadline of any saga; None: no saga waits for
    anything, the watch ends. `version` grows with every setting, so an older one never wins."""

    version: int
    deadline: datetime | None = None
