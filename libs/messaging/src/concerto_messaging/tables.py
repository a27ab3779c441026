"""The two tables every service keeps beside its own: what it still has to publish, and what
it has already consumed."""

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
)

metadata = MetaData()

# Written in the same transaction as the state change it announces; the relay publishes it.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("event_type", String(200), nullable=False),
    Column("topic", String(200), nullable=False),
    # Indexed: a relay looks for an earlier unsent row of the same key before it claims one.
    Column("key", LargeBinary, nullable=False, index=True),
    Column("value", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True), nullable=True, index=True),
    # A relay's claim on the row while it sends it (replicas share the outbox).
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    # Failed sends; after a few the row is set aside and no longer holds up the others.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("set_aside_at", DateTime(timezone=True), nullable=True),
)

# One row per (consumer group, event id) processed; the primary key makes a redelivery a no-op.
inbox = Table(
    "inbox",
    metadata,
    Column("consumer_group", String(100), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("event_type", String(200), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now(), index=True),
)
