"""Builds the integration layer from the settings: one adapter per configured gateway."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from concerto_payment.integration.cardpay import CardpayGateway
from concerto_payment.integration.layer import PaymentGateways
from concerto_payment.integration.paynext import PaynextGateway
from concerto_payment.settings import PaymentSettings

ADAPTERS = {"cardpay": CardpayGateway, "paynext": PaynextGateway}


def payment_gateways(settings: PaymentSettings, sessions: async_sessionmaker[AsyncSession]) -> PaymentGateways:
    urls = settings.gateway_urls()
    names = [name.strip() for name in settings.payment_gateways.split(",") if name.strip()]
    return PaymentGateways(
        [ADAPTERS[name](urls[name], settings.gateway_timeout_seconds) for name in names],
        sessions,
        failure_threshold=settings.breaker_failure_threshold,
        recovery_seconds=settings.breaker_recovery_seconds,
    )
