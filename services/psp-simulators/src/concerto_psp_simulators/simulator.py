"""What both simulators share: the app, its ledger database, health, admin routes and faults.

Each simulator (cardpay.py, paynext.py) brings its own API routes and its own error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import text

from concerto_psp_simulators import ledger
from concerto_psp_simulators.faults import ErrorBody, install_faults
from concerto_runtime import Problem, Settings
from concerto_runtime.problems import problem_handler
from concerto_runtime.database import create_tables, open_database
from concerto_runtime.service import health_router
from concerto_runtime.service_tokens import ServiceIdentity, trusted_callers


def create_simulator(
    name: str,
    *,
    description: str,
    api: APIRouter,
    api_prefix: str,
    error_body: ErrorBody,
    settings: Settings | None = None,
) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = open_database(ledger.database_url(name, settings))
        await create_tables(database.engine, ledger.tables)
        app.state.sessions = database.sessions
        app.state.read_sessions = database.read_sessions

        async def database_ready() -> None:
            async with database.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        app.state.checks = {"database": database_ready}  # read by /health/ready
        try:
            yield
        finally:
            await database.dispose()

    # The docs page's assets come with the app (no CDN), like the gateway's.
    app = FastAPIOffline(title=f"{name} (simulated PSP)", description=description, lifespan=lifespan, redoc_url=None)
    app.state.name = name
    app.include_router(api)
    # Faults, stats and the ledger are the demo's controls: only the payment service's signed
    # calls reach them (ADR 12), as only the gateway's reach a service.
    app.state.service_identity = ServiceIdentity(name, settings.service_caller_keys)
    from_payment = [Depends(trusted_callers("payment"))]
    app.include_router(ledger.router, dependencies=from_payment)
    app.include_router(health_router())
    install_faults(app, api_prefix, error_body, admin=from_payment)
    app.add_exception_handler(Problem, problem_handler)  # a refused admin call: problem+json
    return app
