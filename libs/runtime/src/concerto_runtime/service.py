"""Service defaults: everything a Concerto service runs besides its own domain code.

A service describes itself with a ServiceDefinition (its tables, workflows, activities, event
handlers and HTTP routes); `run()` wires the rest the same way for every service: logging,
database, Kafka producer and outbox relay, Temporal worker, event consumer, health endpoints,
metrics.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import MetaData, text
from tenacity import retry, stop_after_delay, wait_fixed
from temporalio.client import Client

from concerto_contracts import DomainEvent, Topics
from concerto_contracts.http import ConsumerControls
from concerto_messaging import EventConsumer, Handler, OutboxRelay, UnitOfWork, add_to_outbox, create_producer, ensure_topics
from concerto_messaging import metadata as messaging_metadata
from concerto_messaging.housekeeping import prune_forever
from concerto_observability import configure_logging, configure_tracing
from concerto_observability.metrics import install_metrics, on_scrape
from concerto_runtime.database import create_tables, open_database
from concerto_runtime.problems import Problem, install_problem_handlers, problem_response
from concerto_runtime.service_tokens import ServiceIdentity, trusted_callers
from concerto_runtime.settings import Settings
from concerto_runtime.supervision import Loop, SupervisedLoop
from concerto_runtime.temporal import connect_temporal, create_worker
from concerto_runtime.temporal_metrics import temporal_metrics

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a running service holds; handed to its activities, handlers and routes."""

    name: str
    settings: Settings
    sessions: Any  # for transactions that write
    read_sessions: Any  # for queries that only read: they never wait for a writer
    temporal: Client
    relay: OutboxRelay
    # Long-lived objects a service shares between its activities and routes (a client, say).
    extras: dict[str, Any] = field(default_factory=dict)
    consumer: EventConsumer | None = None  # set once the service's consumer exists

    @property
    def source(self) -> str:
        """The CloudEvents `source` of everything this service publishes."""
        return f"/concerto/{self.name}"

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, source=self.source, published=self.relay.wake)

    async def publish_in(self, session, event: DomainEvent, *, correlation_id: str, causation_id: str | None = None) -> str:
        """Publish from an event handler: the event commits with the handler's inbox row."""
        return await add_to_outbox(session, event, source=self.source, correlation_id=correlation_id, causation_id=causation_id)


@dataclass
class ServiceDefinition:
    name: str
    http_port: int
    task_queue: str
    tables: MetaData
    workflows: Sequence[type] = ()
    activities: Callable[[Runtime], Sequence[Callable]] = lambda runtime: ()
    handlers: Callable[[Runtime], dict[type[DomainEvent], Handler]] = lambda runtime: {}
    publishes: Sequence[str] = ()
    router: APIRouter | None = None
    on_start: Callable[[Runtime], Awaitable[None]] | None = None
    # Long-running loops of the service's own, beside the worker, relay and consumer, by name:
    # each a factory of a fresh run (`lambda: my_loop(runtime)`), so that a run that fails is
    # started again. Supervised and watched by the readiness check like those (supervision.py).
    background: Callable[[Runtime], dict[str, Loop]] = lambda runtime: {}
    extra: dict[str, Any] = field(default_factory=dict)
    # Figures of the service's own that are read when /metrics is asked (a breaker's state).
    on_scrape: Callable[[Runtime], Awaitable[None]] | None = None


def runtime_of(request: Request) -> Runtime:
    """FastAPI dependency: the running service's Runtime."""
    return request.app.state.runtime


def create_app(definition: ServiceDefinition, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = open_database(settings.database_url_for(definition.name))
        await create_tables(database.engine, messaging_metadata, definition.tables)
        sessions, read_sessions = database.sessions, database.read_sessions

        producer = create_producer(settings.kafka_bootstrap_servers)
        await _start_with_retry(producer.start)
        temporal = await connect_temporal(settings)
        relay = OutboxRelay(sessions, producer, read_sessions=read_sessions)
        runtime = Runtime(definition.name, settings, sessions, read_sessions, temporal, relay)
        event_handlers = definition.handlers(runtime)
        consumed = sorted({cls.topic for cls in event_handlers})
        group = f"{definition.name}-service"
        await ensure_topics(
            settings.kafka_bootstrap_servers,
            [*definition.publishes, *consumed, *([Topics.dead_letter(group)] if consumed else [])],
        )

        activities = definition.activities(runtime)
        # A service with nothing for Temporal to run (a context that only reacts to events) has
        # no worker: Temporal refuses one with no workflow and no activity.
        worker = create_worker(temporal, definition.task_queue, definition.workflows, activities) if definition.workflows or activities else None
        consumer = (
            EventConsumer(
                group_id=group,
                topics=consumed,
                handlers=event_handlers,
                sessions=sessions,
                read_sessions=read_sessions,
                producer=producer,
                bootstrap_servers=settings.kafka_bootstrap_servers,
            )
            if event_handlers
            else None
        )
        runtime.consumer = consumer
        loops: dict[str, Loop] = {
            "relay": relay.run,
            "temporal-metrics": temporal_metrics().drain_forever,
            "housekeeping": lambda: prune_forever(
                sessions,
                outbox_kept=timedelta(hours=settings.outbox_kept_hours),
                inbox_kept=timedelta(days=settings.inbox_kept_days),
            ),
            **({"consumer": consumer.run} if consumer else {}),
            **definition.background(runtime),
        }
        supervised = [SupervisedLoop(name, loop) for name, loop in loops.items()]
        # The worker is not restarted (a Temporal worker runs once): the readiness check names it if it stops.
        tasks = {"worker": asyncio.create_task(worker.run())} if worker else {}
        tasks |= {loop.name: asyncio.create_task(loop.run()) for loop in supervised}
        for name, task in tasks.items():
            task.add_done_callback(lambda t, name=name: _report_exit(name, t))
        app.state.runtime = runtime
        on_scrape(app, relay.measure)
        if consumer:
            on_scrape(app, consumer.measure)
        if definition.on_scrape:
            on_scrape(app, lambda: definition.on_scrape(runtime))
        for loop in supervised:
            on_scrape(app, loop.measure)
        app.state.checks = _readiness_checks(database.engine, producer, temporal, tasks, supervised, consumer)
        if definition.on_start:
            await definition.on_start(runtime)
        log.info("%s ready on port %s", definition.name, settings.http_port or definition.http_port)
        try:
            yield
        finally:
            loops = [task for name, task in tasks.items() if name != "worker"]
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            if worker:
                await worker.shutdown()
            await producer.stop()
            await database.dispose()

    # No docs and no OpenAPI: only the gateway calls a service, and its contract is concerto_contracts.
    app = FastAPI(title=f"Concerto {definition.name} service (internal)", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_problem_handlers(app)
    install_metrics(app)  # GET /metrics, open like the health checks: nothing in it names an order
    app.include_router(health_router())
    # Only the gateway may call a service's API; its health checks stay open (ADR 12).
    app.state.service_identity = ServiceIdentity(definition.name, settings.service_caller_keys)
    from_the_gateway = [Depends(trusted_callers("gateway"))]
    app.include_router(consumer_router(), dependencies=from_the_gateway)
    if definition.router:
        app.include_router(definition.router, dependencies=from_the_gateway)
    return app


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health/live")
    async def live() -> dict:
        return {"status": "alive"}

    @router.get("/health/ready")
    async def ready(request: Request) -> JSONResponse:
        checks: dict[str, Callable[[], Awaitable[None]]] = getattr(request.app.state, "checks", {})
        failures = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout=2)
            except Exception as exc:  # a health check reports every kind of failure
                failures[name] = f"{type(exc).__name__}: {exc}"
        if failures or not checks:
            detail = "; ".join(f"{k}: {v}" for k, v in failures.items()) or "starting"
            return problem_response(503, "Not ready", detail, "/health/ready", checks=failures)
        return JSONResponse({"status": "ready", "checks": sorted(checks)})

    return router


def consumer_router() -> APIRouter:
    """The consumer controls: pause it (a silent service) or make it fail some event types."""
    router = APIRouter(prefix="/consumer", tags=["consumer"])

    def consumer_of(request: Request) -> EventConsumer:
        consumer = runtime_of(request).consumer
        if consumer is None:
            raise Problem(404, "No consumer", "this service consumes no events")
        return consumer

    @router.get("")
    async def controls(request: Request) -> ConsumerControls:
        return consumer_of(request).controls

    @router.put("")
    async def set_controls(request: Request, controls: ConsumerControls) -> ConsumerControls:
        consumer = consumer_of(request)
        consumer.set_controls(controls)
        return consumer.controls

    return router


def _readiness_checks(engine, producer, temporal: Client, tasks: dict, supervised: list[SupervisedLoop], consumer: EventConsumer | None):
    async def database() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def kafka() -> None:
        if not await producer.client.ready(producer.client.get_random_node()):
            raise ConnectionError("no broker reachable")

    async def temporal_server() -> None:
        await temporal.service_client.check_health()

    async def background() -> None:
        dead = [name for name, task in tasks.items() if task.done()]
        if dead:
            raise RuntimeError(f"stopped: {', '.join(dead)}")
        if failing := [problem for loop in supervised if (problem := loop.problem())]:
            raise RuntimeError("; ".join(failing))
        if consumer is not None and (problem := consumer.problem()):
            raise RuntimeError(problem)
        if consumer is not None and not consumer.assigned:
            raise RuntimeError("consumer has no partitions assigned yet")

    return {"database": database, "kafka": kafka, "temporal": temporal_server, "background": background}


def _report_exit(name: str, task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception():
        log.error("%s stopped", name, exc_info=task.exception())


@retry(stop=stop_after_delay(60), wait=wait_fixed(1), reraise=True)
async def _start_with_retry(start: Callable[[], Awaitable[None]]) -> None:
    await start()


def run(definition: ServiceDefinition) -> None:
    """The whole `main` of a service."""
    settings = Settings()
    serve(create_app(definition, settings), definition.name, settings.http_port or definition.http_port, settings)


def serve(app: FastAPI, name: str, port: int, settings: Settings) -> None:
    configure_logging(name, settings.log_level)
    configure_tracing(name, app)
    # log_config=None: keep our JSON logs; no Server header: nothing tells a caller what runs here.
    uvicorn.run(app, host=settings.http_host, port=port, log_config=None, server_header=False)
    # Skip interpreter teardown: Temporal's core threads can abort it (temporalio/sdk-python#300).
    logging.shutdown()
    os._exit(0)
