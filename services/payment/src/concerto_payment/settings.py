"""The payment service's own settings, beside the ones every service reads."""

from __future__ import annotations

from pydantic import Field

from concerto_runtime import Settings


class PaymentSettings(Settings):
    cardpay_url: str = Field("http://127.0.0.1:8201", alias="CARDPAY_URL")
    paynext_url: str = Field("http://127.0.0.1:8202", alias="PAYNEXT_URL")
    # Order of preference: the first is the primary, the next ones take over when it is down.
    payment_gateways: str = Field("cardpay,paynext", alias="PAYMENT_GATEWAYS")
    gateway_timeout_seconds: float = Field(2.0, alias="GATEWAY_TIMEOUT_SECONDS")
    breaker_failure_threshold: int = Field(5, alias="BREAKER_FAILURE_THRESHOLD")
    breaker_recovery_seconds: float = Field(15.0, alias="BREAKER_RECOVERY_SECONDS")
    # How long a payment keeps trying while no gateway can take it; then it fails as
    # `unavailable` and the order is cancelled. Shorter than the order's own payment deadline.
    payment_deadline_seconds: int = Field(300, alias="PAYMENT_DEADLINE_SECONDS")

    def gateway_urls(self) -> dict[str, str]:
        return {"cardpay": self.cardpay_url, "paynext": self.paynext_url}
