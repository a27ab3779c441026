"""The gateway's settings, from the environment."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from concerto_runtime import Settings


class GatewaySettings(Settings):
    # Local defaults only; set real keys through the environment.
    api_key: SecretStr = Field(SecretStr("dev-key"), alias="CONCERTO_API_KEY")
    admin_api_key: SecretStr = Field(SecretStr("dev-admin-key"), alias="CONCERTO_ADMIN_API_KEY")
    # The trusted-partner channel; compose turns it off unless keys are given.
    api_keys_enabled: bool = Field(True, alias="API_KEYS_ENABLED")
    # The identity provider: locally the dev issuer; any OpenID provider by configuration alone.
    oauth_issuer: str = Field("http://127.0.0.1:8300", alias="OAUTH_ISSUER")
    oauth_audience: str = Field("concerto-api", alias="OAUTH_AUDIENCE")
    oauth_jwks_url: str | None = Field(None, alias="OAUTH_JWKS_URL", description="default: the issuer's /jwks.json")
    rate_limit: str = Field("100/second", alias="RATE_LIMIT", description="per caller (customer, key, operator), in `limits` notation")
    failed_auth_rate_limit: str = Field("20/minute", alias="FAILED_AUTH_RATE_LIMIT", description="calls without a valid credential, per client address")
    order_url: str = Field("http://127.0.0.1:8101", alias="ORDER_SERVICE_URL")
    payment_url: str = Field("http://127.0.0.1:8102", alias="PAYMENT_SERVICE_URL")
    fulfillment_url: str = Field("http://127.0.0.1:8103", alias="FULFILLMENT_SERVICE_URL")
    loyalty_url: str = Field("http://127.0.0.1:8104", alias="LOYALTY_SERVICE_URL")
    monitor_url: str = Field("http://127.0.0.1:8105", alias="MONITOR_SERVICE_URL")
    # Where the operator console links a workflow id to (the Temporal Web UI, as a browser reaches it).
    temporal_ui_url: str = Field("http://127.0.0.1:8233", alias="TEMPORAL_UI_URL")
    upstream_timeout_seconds: float = Field(10.0, alias="UPSTREAM_TIMEOUT_SECONDS")

    @field_validator("api_keys_enabled", mode="before")
    @classmethod
    def _empty_means_off(cls, value: object) -> object:
        return False if value == "" else value  # API_KEYS_ENABLED=${CONCERTO_API_KEY:+true} in compose
