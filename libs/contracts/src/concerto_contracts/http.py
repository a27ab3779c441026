"""The public HTTP interface's bodies: validated by the gateway, understood by the services."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from concerto_contracts.values import MaskedCard, ShippingAddress, Totals


# What each kind of string in a request may hold (OWASP API4, API8): an id or a code is a few
# safe characters; free text is printable, with no control characters (no line breaks to forge
# a log line, no NUL to cut a string short downstream). Every string also has a maximum length.
IDENTIFIER = r"^[A-Za-z0-9._:-]+$"
CODE = r"^[A-Za-z0-9_-]+$"
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]+$"


def identifier(max_length: int = 64, **kwargs) -> Field:
    return Field(min_length=1, max_length=max_length, pattern=IDENTIFIER, **kwargs)


def text(max_length: int, **kwargs) -> Field:
    return Field(min_length=1, max_length=max_length, pattern=PRINTABLE, **kwargs)


class Strict(BaseModel):
    """A request body: no unknown fields, and no coercion (`true` is not a quantity)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class Customer(Strict):
    id: str = identifier(examples=["cust-42"])
    email: EmailStr = Field(max_length=254, examples=["ada@example.com"])
    name: str = text(200, examples=["Ada Lovelace"])


class OrderItemRequest(Strict):
    sku: str = identifier(examples=["CON-BATON"])
    quantity: int = Field(gt=0, le=100)


CardToken = Annotated[str, Field(min_length=1, max_length=200, pattern=CODE)]


class PaymentDetails(Strict):
    token: CardToken = Field(
        description="A card token from the payment provider: `tok_visa` approves, `tok_chargeDeclined` is declined.",
        examples=["tok_visa"],
    )


class Address(ShippingAddress):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True, strict=True)

    name: str = text(200, examples=["Ada Lovelace"])
    line1: str = text(200, examples=["12 St James's Square"])
    city: str = text(100, examples=["London"])
    postal_code: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9 -]+$", examples=["SW1Y 4JH"])


class PlaceOrderRequest(Strict):
    customer: Customer
    items: list[OrderItemRequest] = Field(min_length=1, max_length=50)
    shipping_address: Address
    payment: PaymentDetails
    promotion_codes: list[Annotated[str, Field(min_length=1, max_length=32, pattern=CODE)]] = Field(default_factory=list, max_length=5)
    channel: Literal["web", "mobile", "store", "partner"] = "web"


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    PAID = "PAID"
    FULFILLING = "FULFILLING"
    SHIPPED = "SHIPPED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (OrderStatus.COMPLETED, OrderStatus.CANCELLED)


class OrderAccepted(BaseModel):
    order_id: str
    status: OrderStatus
    correlation_id: str


class OrderLine(BaseModel):
    sku: str
    quantity: int
    # Known once the order is priced.
    name: str | None = None
    unit_price: Decimal | None = None


class PaymentView(BaseModel):
    payment_id: str
    card: MaskedCard | None = None
    gateway: str | None = None


class ShipmentView(BaseModel):
    shipment_id: str
    carrier: str
    tracking_number: str
    warehouse: str | None = None
    dispatched_at: datetime | None = None
    # The carrier's estimate, from ShipmentDispatched; None before dispatch, for a carrier that
    # gives none, and for orders shipped before fulfillment sent it.
    estimated_delivery: date | None = None


class OrderView(BaseModel):
    order_id: str
    status: OrderStatus
    customer_id: str
    correlation_id: str
    items: list[OrderLine]
    totals: Totals | None = None
    cancellation_reason: str | None = None
    payment: PaymentView | None = None
    shipment: ShipmentView | None = None
    created_at: datetime
    updated_at: datetime
    # Set while the order waits PENDING because its workflow cannot be started (its stored
    # submission no longer validates, say): someone has to look. Null otherwise.
    start_failure: str | None = None


class OrderPage(BaseModel):
    items: list[OrderView]
    total: int
    limit: int
    offset: int


class Product(BaseModel):
    sku: str
    name: str
    unit_price: Decimal
    currency: str
    available: int | None = Field(description="Units in stock as last reported by fulfillment; null until known.")


class ProductList(BaseModel):
    items: list[Product]


class StockLevel(Strict):
    quantity: int = Field(ge=0, le=1_000_000)


class LoyaltyEntry(BaseModel):
    order_id: str
    points: int
    reason: str
    at: datetime


class LoyaltyAccount(BaseModel):
    customer_id: str
    points: int
    tier: str
    history: list[LoyaltyEntry]


class OrderSubmission(BaseModel):
    """An order as the gateway forwards it to the order context: the card token has already
    been exchanged for a payment method reference held by the payment context."""

    customer: Customer
    items: list[OrderItemRequest]
    shipping_address: Address
    promotion_codes: list[str] = []
    channel: str = "web"
    payment_method_id: str
    # A hash of the client's request body, to tell an idempotent retry from a conflicting one.
    request_fingerprint: str


class PaymentMethodRequest(Strict):
    token: CardToken


class PaymentMethodCreated(BaseModel):
    payment_method_id: str
    card: MaskedCard


class GatewayFaults(BaseModel):
    """Faults injected into a simulated payment gateway; an empty body clears them all."""

    model_config = ConfigDict(extra="forbid", strict=True)

    error_rate: float | None = Field(None, ge=0, le=1, description="share of calls answered 503, nothing done")
    latency_ms: int | None = Field(None, ge=0, le=60_000, description="delay added to every call")
    timeout_rate: float | None = Field(None, ge=0, le=1, description="share of calls that hang, nothing done")
    outage: bool | None = Field(None, description="every call answered 503 at once")
    drop_response_rate: float | None = Field(
        None, ge=0, le=1, description="share of calls carried out whose answer is then lost (the ambiguous outcome)"
    )
    tampered_answer_rate: float | None = Field(
        None, ge=0, le=1, description="share of charges and refunds carried out whose answer is then replaced by nonsense"
    )
    hang_seconds: float | None = Field(None, ge=0, le=300, description="how long a hanging call hangs")
    seed: int | None = Field(None, description="for a repeatable run")
    refuse_refunds: bool | None = Field(None, description="every refund refused with a 4xx, nothing done: refused for good")


class PaymentGatewayStatus(BaseModel):
    name: str
    state: str = Field(description="the circuit breaker: closed, open or half_open")
    consecutive_failures: int
    retry_in_seconds: float
    calls: dict[str, int]


class KeyFigures(BaseModel):
    """The few figures an operator looks at first, read from every service's /metrics."""

    orders_placed: int = Field(description="since the services started (counters restart with them)")
    orders_completed: int
    orders_cancelled: int
    cancelled_by_reason: dict[str, int]
    saga_seconds_p50: float | None = Field(description="from placement to the end, over the orders ended so far")
    saga_seconds_p95: float | None
    sagas_timed_out: int
    consumer_lag: dict[str, int] = Field(description="messages not yet consumed, per consumer group")
    outbox_backlog: dict[str, int] = Field(description="events not yet published, per service")
    outbox_oldest_unsent_seconds: float
    dead_letters: dict[str, int] = Field(description="events parked, per consumer group")
    breakers: dict[str, str] = Field(description="each payment gateway's circuit breaker: closed, open or half_open")
    unreachable: list[str] = Field(description="services whose figures could not be read just now")


# --- the saga monitor ------------------------------------------------------------------


class SagaStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    STUCK = "STUCK"
    # A context refused to undo its part for good (a refund the gateway refuses): an operator decides.
    COMPENSATION_FAILED = "COMPENSATION_FAILED"


class TimelineEvent(BaseModel):
    event_id: str
    type: str = Field(description="the event's name, e.g. PaymentCompleted", examples=["PaymentCompleted"])
    source: str = Field(description="the context that published it, e.g. /concerto/payment")
    time: datetime = Field(description="when its producer published it")
    received_at: datetime = Field(description="when the monitor saw it")
    causation_id: str | None = Field(None, description="the event id of the event that caused it")
    trace_id: str | None = Field(None, description="its OpenTelemetry trace id (W3C)")
    late: bool = Field(False, description="arrived after the saga had ended or timed out at this step: recorded, changes nothing")


class ExpectedEvent(BaseModel):
    step: str = Field(examples=["reservation"])
    events: list[str] = Field(description="any one of these moves the saga on", examples=[["InventoryReserved", "InventoryUnavailable"]])
    deadline: datetime | None = Field(None, description="null for an optional step, which the saga does not wait for")
    optional: bool = False
    compensation: bool = Field(False, description="a step of the way back: a context undoing its part")


class SagaSummary(BaseModel):
    order_id: str
    correlation_id: str
    status: SagaStatus
    current_step: str | None = Field(None, description="the last event that moved the saga on")
    next_expected: ExpectedEvent | None = Field(None, description="the expected event with the earliest deadline")
    stuck_step: str | None = Field(None, description="the step whose deadline passed, while the saga is STUCK")
    started_at: datetime
    updated_at: datetime


class Timeline(SagaSummary):
    """The saga monitor's view of one order: every event seen, in causal order."""

    events: list[TimelineEvent]
    expected: list[ExpectedEvent] = Field(description="every event the saga is still waiting for")
    compensable: bool = Field(description="whether a timed-out step would still be compensated (before the pivot)")
    temporal_workflows: list[str] = Field(description="ids of the Temporal workflows that handled this order")
    trace_id: str | None = Field(None, description="the order's OpenTelemetry trace: the one its first event was published in (ADR 18)")
    trace_url: str | None = Field(None, description="the order's trace in the trace viewer (Zipkin on the local stack), if there is one")


class LogLine(BaseModel):
    """One line a component logged (its JSON log line; fields beyond these are left out)."""

    time: str = Field(description="when, as the component wrote it (local time, milliseconds)", examples=["2026-01-31 12:00:00,123"])
    component: str = Field(description="the component whose log it is", examples=["payment"])
    level: str | None = Field(None, examples=["INFO"])
    logger: str | None = None
    message: str | None = None
    trace_id: str | None = None


class OrderLogs(BaseModel):
    order_id: str
    lines: list[LogLine] = Field(description="the order's log lines from every component, merged by time, the earliest first")


class SagaPage(BaseModel):
    items: list[SagaSummary]
    total: int
    limit: int
    offset: int


class DeadLetter(BaseModel):
    id: int
    topic: str = Field(description="the topic the message was read from", examples=["payment.events.v1"])
    consumer: str = Field(description="the consumer group that gave up on it", examples=["loyalty-service"])
    reason: str = Field(description="undecodable (not one of our events), or rejected (its handler found it invalid)")
    error: str
    event_type: str | None = None
    event_id: str | None = None
    order_id: str | None = Field(None, description="the message's key")
    dead_lettered_at: datetime
    redriven_at: datetime | None = None


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    total: int
    limit: int
    offset: int


class ConsumerControls(BaseModel):
    """A context's event consumer, switched for a demonstration or a test: paused, it reads
    nothing (a silent service); `fail_event_types` makes its handler reject those events as
    invalid, so they end on the dead-letter topic. An empty body restores normal service."""

    model_config = ConfigDict(extra="forbid", strict=True)

    paused: bool = False
    fail_event_types: list[Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z]+$")]] = Field(
        default_factory=list, max_length=20, examples=[["PaymentCompleted"]]
    )


# --- a refund the gateway refused: the operator's decision ----------------------------------


class RefundDecisionRequest(Strict):
    """What an operator says about a refund the payment gateway refused (the console's form, the
    admin API's body). Who says it comes from their sign-in, never from the body."""

    reason: str = text(500, description="why, for the audit record", examples=["the card issuer has fixed the account"])
    reference: str | None = text(
        100, default=None, description="refunded by hand: the bank transfer's or the provider's own reference"
    )


class RefundDecisionCommand(RefundDecisionRequest):
    """The gateway's call to the payment context: the request, and the signed-in operator."""

    operator: str = text(200, description="who decided: the operator's sign-in, as the gateway authenticated it")


class RefundDecisionView(BaseModel):
    action: str = Field(description="retry or refunded_by_hand")
    operator: str
    reason: str
    reference: str | None = None
    decided_at: datetime


class PaymentStatusView(BaseModel):
    """A payment as its context has it, for operators: the refund's fate and every decision taken on it."""

    order_id: str
    payment_id: str
    status: str = Field(description="PENDING, COMPLETED, FAILED, REFUNDED or REFUND_FAILED")
    amount: Decimal
    currency: str
    gateway: str | None = None
    failure_reason: str | None = Field(None, description="why the charge failed, or why the gateway refused the refund")
    refund_id: str | None = None
    awaiting_decision: bool = Field(False, description="the refund was refused for good: retry it, or record it as refunded by hand")
    decisions: list[RefundDecisionView] = []
