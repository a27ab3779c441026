"""The gateway's settings, from the environment."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from concerto_runtime import Settings


class GatewaySettings(Settings):
    # The trusted-partner channel (ADR 11). No key has a default: the local stack (stack.py) sets
    # dev-key and dev-admin-key; elsewhere a key works only if it is given, and an empty one never.
    api_key: SecretStr | None = Field(None, alias="CONCERTO_API_KEY")
    admin_api_key: SecretStr | None = Field(None, alias="CONCERTO_ADMIN_API_KEY")
    # Off turns both keys off whatever they are; compose turns it off unless keys are given.
    api_keys_enabled: bool = Field(True, alias="API_KEYS_ENABLED")
    # The identity provider: locally the dev issuer; any OpenID provider by configuration alone.
    oauth_issuer: str = Field("http://127.0.0.1:8300", alias="OAUTH_ISSUER")
    oauth_audience: str = Field("concerto-api", alias="OAUTH_AUDIENCE")
    oauth_jwks_url: str | None = Field(None, alias="OAUTH_JWKS_URL", description="default: the issuer's /jwks.json")
    oauth_jwks_lifespan_seconds: float = Field(
        300, gt=0, alias="OAUTH_JWKS_LIFESPAN_SECONDS", description="how long the issuer's key set is trusted before it is fetched again"
    )
    # Where the console's sign-in form sends a user name and password (the password grant).
    oauth_token_url: str | None = Field(None, alias="OAUTH_TOKEN_URL", description="default: the issuer's /token")
    rate_limit: str = Field("100/second", alias="RATE_LIMIT", description="per caller (customer, key, operator), in `limits` notation")
    # Where the budgets are counted: memory:// for one gateway; a shared store (for example
    # async+redis://redis:6379) so that several gateway replicas spend one budget per caller.
    rate_limit_storage_uri: str = Field("memory://", alias="RATE_LIMIT_STORAGE_URI", description="a `limits` storage URI")
    order_rate_limit: str = Field("10/minute", alias="ORDER_RATE_LIMIT", description="orders placed for one customer, by any caller")
    failed_auth_rate_limit: str = Field(
        "20/minute", alias="FAILED_AUTH_RATE_LIMIT", description="calls without a valid credential and console sign-ins, per client address"
    )
    # The proxies in front of the gateway, if any (comma-separated addresses or CIDRs, e.g.
    # 10.0.0.0/8): X-Forwarded-For names the client only when a call comes from one of them.
    # None by default: whoever connects is the client, and cannot choose another address's budget.
    trusted_proxies: str = Field("", alias="TRUSTED_PROXIES")
    order_url: str = Field("http://127.0.0.1:8101", alias="ORDER_SERVICE_URL")
    payment_url: str = Field("http://127.0.0.1:8102", alias="PAYMENT_SERVICE_URL")
    fulfillment_url: str = Field("http://127.0.0.1:8103", alias="FULFILLMENT_SERVICE_URL")
    loyalty_url: str = Field("http://127.0.0.1:8104", alias="LOYALTY_SERVICE_URL")
    monitor_url: str = Field("http://127.0.0.1:8105", alias="MONITOR_SERVICE_URL")
    # Where the operator console links a workflow id to (the Temporal Web UI, as a browser reaches it).
    temporal_ui_url: str = Field("http://127.0.0.1:8233", alias="TEMPORAL_UI_URL")
    # Where the local stack's components write their JSON logs (stack.py: <data dir>/logs): an
    # order's lines, merged, for the console's journey (ADR 18). Compose's logs are Docker's.
    logs_dir: Path | None = Field(None, alias="LOGS_DIR", description="default: CONCERTO_DATA_DIR/logs")
    max_body_bytes: int = Field(64 * 1024, alias="MAX_BODY_BYTES", description="larger request bodies get 413")
    upstream_timeout_seconds: float = Field(10.0, alias="UPSTREAM_TIMEOUT_SECONDS")

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        for proxy in filter(None, (part.strip() for part in value.split(","))):
            ipaddress.ip_network(proxy, strict=False)  # a typo fails at start, not silently
        return value

    @field_validator("api_keys_enabled", mode="before")
    @classmethod
    def _empty_means_off(cls, value: object) -> object:
        return False if value == "" else value  # API_KEYS_ENABLED=${CONCERTO_API_KEY:+true} in compose
