"""One topic per publishing context. Every event of an order is keyed by the order id, so
Kafka keeps one order's events in order within a partition."""


class Topics:
    ORDER = "order.events.v1"
    PAYMENT = "payment.events.v1"
    FULFILLMENT = "fulfillment.events.v1"
    LOYALTY = "loyalty.events.v1"

    @staticmethod
    def dead_letter(consumer_group: str) -> str:
        """Each consumer group parks what it cannot process on its own dead-letter topic."""
        return f"{consumer_group}.dlq"
