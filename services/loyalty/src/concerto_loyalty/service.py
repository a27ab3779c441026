"""The loyalty service: its tables, workflow, activity, event handlers and routes."""

from __future__ import annotations

from concerto_contracts import Topics
from concerto_loyalty.adapters import db
from concerto_loyalty.api.routes import router
from concerto_loyalty.messaging.handlers import handlers
from concerto_loyalty.workflows.activities import LoyaltyActivities
from concerto_loyalty.workflows.inputs import TASK_QUEUE
from concerto_loyalty.workflows.loyalty_workflow import LoyaltyAccountWorkflow
from concerto_runtime import Runtime, ServiceDefinition


def activities(runtime: Runtime) -> list:
    return [LoyaltyActivities(runtime).apply_change]


definition = ServiceDefinition(
    name="loyalty",
    http_port=8104,
    task_queue=TASK_QUEUE,
    tables=db.tables,
    workflows=[LoyaltyAccountWorkflow],
    activities=activities,
    handlers=handlers,
    publishes=[Topics.LOYALTY],
    router=router,
)
