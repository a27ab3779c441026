"""The gateway's settings, from the environment."""

from __future__ import annotations

from pydantic import Field, SecretStr

from concerto_runtime import Settings


class GatewaySettings(Settings):
    # Local defaults only; set real keys through the environment.
    api_key: SecretStr = Field(SecretStr("dev-key"), alias="CONCERTO_API_KEY")
    admin_api_key: SecretStr = Field(SecretStr("dev-admin-key"), alias="CONCERTO_ADMIN_API_KEY")
    rate_limit: str = Field("100/second", alias="RATE_LIMIT", description="per API key, in `limits` notation")
    order_url: str = Field("http://127.0.0.1:8101", alias="ORDER_SERVICE_URL")
    payment_url: str = Field("http://127.0.0.1:8102", alias="PAYMENT_SERVICE_URL")
    fulfillment_url: str = Field("http://127.0.0.1:8103", alias="FULFILLMENT_SERVICE_URL")
    loyalty_url: str = Field("http://127.0.0.1:8104", alias="LOYALTY_SERVICE_URL")
    monitor_url: str = Field("http://127.0.0.1:8105", alias="MONITOR_SERVICE_URL")
    # Where the operator console links a workflow id to (the Temporal Web UI, as a browser reaches it).
    temporal_ui_url: str = Field("http://127.0.0.1:8233", alias="TEMPORAL_UI_URL")
    upstream_timeout_seconds: float = Field(10.0, alias="UPSTREAM_TIMEOUT_SECONDS")
