"""Reliable messaging between contexts: a transactional outbox and its relay on the producing
side, an idempotent consumer with an inbox, held partitions and a dead-letter topic on the
consuming side."""

from concerto_messaging.consumer import EventConsumer, Handler, InjectedFault, InvalidEvent, database_first
from concerto_messaging.kafka import create_producer, ensure_topics
from concerto_messaging.relay import OutboxRelay
from concerto_messaging.tables import metadata
from concerto_messaging.unit_of_work import UnitOfWork, add_to_outbox

__all__ = [
    "EventConsumer",
    "Handler",
    "InjectedFault",
    "InvalidEvent",
    "OutboxRelay",
    "UnitOfWork",
    "add_to_outbox",
    "create_producer",
    "database_first",
    "ensure_topics",
    "metadata",
]
