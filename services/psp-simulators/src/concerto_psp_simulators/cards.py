"""The test card tokens both simulators understand (the familiar test-mode convention).

A token stands for a card; no card number ever reaches a simulator."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Card:
    brand: str
    last4: str
    decline_code: str | None = None  # None: the card is approved

    @property
    def approved(self) -> bool:
        return self.decline_code is None


TEST_CARDS: dict[str, Card] = {
    "tok_visa": Card("visa", "4242"),
    "tok_mastercard": Card("mastercard", "4444"),
    "tok_amex": Card("amex", "8431"),
    "tok_chargeDeclined": Card("visa", "0002", decline_code="generic_decline"),
    "tok_chargeDeclinedInsufficientFunds": Card("visa", "9995", decline_code="insufficient_funds"),
}


def card_for(token: str) -> Card | None:
    """The card a token stands for; None for an unknown token (an invalid payment source)."""
    return TEST_CARDS.get(token)
