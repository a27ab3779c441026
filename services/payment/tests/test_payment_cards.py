"""Unit tests of the payment context's card rules (concerto_payment.domain.cards): pure
functions, no Temporal, no database."""

from __future__ import annotations

import pytest

from concerto_contracts.values import MaskedCard
from concerto_payment.domain.cards import TEST_TOKENS, UnknownToken, card_for, payment_id_for


@pytest.mark.parametrize(
    ("token", "card"),
    [
        ("tok_visa", MaskedCard(brand="visa", last4="4242")),
        ("tok_mastercard", MaskedCard(brand="mastercard", last4="4444")),
        ("tok_amex", MaskedCard(brand="amex", last4="8431")),
        ("tok_chargeDeclined", MaskedCard(brand="visa", last4="0002")),
        ("tok_chargeDeclinedInsufficientFunds", MaskedCard(brand="visa", last4="9995")),
    ],
)
def test_payment_cards_card_for_a_test_token_is_its_masked_card(token, card):
    assert card_for(token) == card


@pytest.mark.parametrize("token", ["", "tok_unknown", "TOK_VISA", "tok_visa ", "4242424242424242"])
def test_payment_cards_card_for_an_unknown_token_raises(token):
    with pytest.raises(UnknownToken) as caught:
        card_for(token)
    # A ValueError, so callers that only know the builtin still catch it.
    assert isinstance(caught.value, ValueError)
    # The message lists the tokens that do work, and never repeats the one given (it could be a real card).
    assert all(known in str(caught.value) for known in TEST_TOKENS)
    if token:
        assert token not in str(caught.value).split(", ")


def test_payment_cards_masked_cards_carry_only_brand_and_last_four():
    for card in TEST_TOKENS.values():
        assert set(card.model_dump()) == {"brand", "last4"}
        assert len(card.last4) == 4 and card.last4.isdigit()


def test_payment_cards_payment_id_derives_from_the_order_id():
    assert payment_id_for("ord-1") == "pay-ord-1"


def test_payment_cards_payment_id_is_stable_across_calls():
    # A redelivered OrderConfirmed must find the same payment, never start a second one.
    assert payment_id_for("ord-abc123") == payment_id_for("ord-abc123")
    assert payment_id_for("ord-1") != payment_id_for("ord-2")
