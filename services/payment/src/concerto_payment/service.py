"""The payment service: its tables, workflows, activities, event handlers and routes."""

from __future__ import annotations

from concerto_contracts import Topics
from concerto_payment.adapters import db
from concerto_payment.api.routes import router
from concerto_payment.integration.setup import payment_gateways
from concerto_payment.messaging.handlers import handlers
from concerto_payment.settings import PaymentSettings
from concerto_payment.workflows.activities import PaymentActivities
from concerto_payment.workflows.inputs import TASK_QUEUE
from concerto_payment.workflows.payment_workflow import PaymentWorkflow, RefundWorkflow
from concerto_runtime import Runtime, ServiceDefinition


def activities(runtime: Runtime) -> list:
    # One integration layer per process: its circuit breakers see every call the worker makes.
    gateways = runtime.extras["payment_gateways"] = payment_gateways(PaymentSettings(), runtime.sessions)
    acts = PaymentActivities(runtime, gateways)
    return [acts.charge_card, acts.record_payment, acts.release_unclaimed_charge, acts.refund_payment, acts.record_refund_decision]


definition = ServiceDefinition(
    name="payment",
    http_port=8102,
    task_queue=TASK_QUEUE,
    tables=db.tables,
    workflows=[PaymentWorkflow, RefundWorkflow],
    activities=activities,
    handlers=handlers,
    publishes=[Topics.PAYMENT],
    router=router,
    on_scrape=lambda runtime: runtime.extras["payment_gateways"].measure(),
)
