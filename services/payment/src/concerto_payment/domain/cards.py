"""Card tokens as the payment providers' test mode knows them. The token is all Concerto ever
holds of a card; outside the payment context only the brand and last four travel. Whether a
card is approved is the provider's answer, not ours."""

from __future__ import annotations

from concerto_contracts.values import MaskedCard

# The familiar test-token convention: tok_visa approves, tok_chargeDeclined is declined.
TEST_TOKENS = {
    "tok_visa": MaskedCard(brand="visa", last4="4242"),
    "tok_mastercard": MaskedCard(brand="mastercard", last4="4444"),
    "tok_amex": MaskedCard(brand="amex", last4="8431"),
    "tok_chargeDeclined": MaskedCard(brand="visa", last4="0002"),
    "tok_chargeDeclinedInsufficientFunds": MaskedCard(brand="visa", last4="9995"),
}


class UnknownToken(ValueError):
    pass


def card_for(token: str) -> MaskedCard:
    try:
        return TEST_TOKENS[token]
    except KeyError:
        raise UnknownToken(f"unknown card token; test tokens are: {', '.join(TEST_TOKENS)}") from None


def payment_id_for(order_id: str) -> str:
    """One payment per order, whatever redelivers the order: its id derives from the order's."""
    return f"pay-{order_id}"
