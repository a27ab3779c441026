"""The monitor service: the saga projection, SagaWatch timers, dead letters, and their routes."""

from __future__ import annotations

from concerto_contracts import Topics
from concerto_monitor.adapters import db
from concerto_monitor.adapters.dead_letters import read_dead_letters
from concerto_monitor.api.routes import router
from concerto_monitor.messaging.handlers import handlers
from concerto_monitor.settings import SAGA
from concerto_monitor.workflows.activities import WatchActivities
from concerto_monitor.workflows.inputs import TASK_QUEUE
from concerto_monitor.workflows.saga_watch import SagaWatch
from concerto_monitor.workflows.watch_keeper import keep_watch_armed, rearm_if_gone
from concerto_runtime import ServiceDefinition

definition = ServiceDefinition(
    name="monitor",
    http_port=8105,
    task_queue=TASK_QUEUE,
    tables=db.tables,
    workflows=[SagaWatch],
    activities=lambda runtime: [WatchActivities(runtime, SAGA).handle_due_sagas],
    handlers=lambda runtime: handlers(runtime, SAGA),
    publishes=[Topics.MONITOR],
    router=router,
    # SagaWatch is started again at start-up, and whenever its run is found gone.
    on_start=rearm_if_gone,
    background=lambda runtime: {
        "dead letters": lambda: read_dead_letters(runtime.settings.kafka_bootstrap_servers, runtime.sessions),
        "saga watch keeper": lambda: keep_watch_armed(runtime),
    },
)
