"""The contract between bounded contexts: versioned events carried as CloudEvents on Kafka."""

from concerto_contracts.envelope import Envelope, KafkaRecord, UndecodableEvent, decode, encode
from concerto_contracts.events import EVENT_TYPES, DomainEvent, event_class
from concerto_contracts.topics import Topics

__all__ = ["EVENT_TYPES", "DomainEvent", "Envelope", "KafkaRecord", "UndecodableEvent", "Topics", "decode", "encode", "event_class"]
