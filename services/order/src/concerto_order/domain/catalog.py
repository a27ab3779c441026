"""The products this shop sells, seeded into the order database on first start.
Order owns names and prices; fulfillment owns how many are in stock."""

from decimal import Decimal

from concerto_order.domain.model import Product

CURRENCY = "EUR"

SEED_PRODUCTS = [
    Product("CON-BATON", "Conductor's baton", Decimal("24.00"), 50),
    Product("CON-SCORE-B5", "Beethoven 5, full score", Decimal("39.50"), 800),
    Product("CON-METRONOME", "Mechanical metronome", Decimal("59.00"), 600),
    Product("CON-STAND", "Folding music stand", Decimal("34.90"), 1500),
    Product("CON-ROSIN", "Violin rosin", Decimal("8.50"), 40),
    Product("CON-TUNER", "Clip-on tuner", Decimal("17.00"), 60),
]
