"""Kafka clients configured the one way every service uses them."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


def create_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    # Idempotent with acks=all: a retried send is written once, in order, on every replica.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
    )


async def ensure_topics(bootstrap_servers: str, topics: list[str], partitions: int = 3) -> None:
    """Create the topics a service publishes to and reads from, if they do not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(name=t, num_partitions=partitions, replication_factor=1) for t in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another service created it first
            log.info("created topics", extra={"topics": missing})
    finally:
        await admin.close()
