"""One topic per publishing context. Every event of an order is keyed by the order id, so
Kafka keeps one order's events in order within a partition."""


class Topics:
    ORDER = "order.events.v1"
    PAYMENT = "payment.events.v1"
    FULFILLMENT = "fulfillment.events.v1"
    LOYALTY = "loyalty.events.v1"
    MONITOR = "monitor.events.v1"

    # Every topic that carries an order's events: what the saga monitor watches.
    DOMAIN = (ORDER, PAYMENT, FULFILLMENT, LOYALTY, MONITOR)

    @staticmethod
    def dead_letter(consumer_group: str) -> str:
        """Each consumer group parks what it cannot process on its own dead-letter topic."""
        return f"{consumer_group}.dlq"

    # How the dead-letter topics are named, for whoever reads them all (the monitor).
    DEAD_LETTER_PATTERN = r"^.+\.dlq$"
