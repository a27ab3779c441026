"""Every service reads the same settings from the environment (twelve-factor)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    data_dir: Path = Field(Path(".data"), alias="CONCERTO_DATA_DIR")
    # Any SQLAlchemy async URL; `{service}` is replaced by the service name so one setting can
    # give each service its own database, e.g. postgresql+asyncpg://u:p@db/concerto_{service}.
    database_url: str | None = Field(None, alias="DATABASE_URL")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    temporal_address: str = Field("127.0.0.1:7233", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field("default", alias="TEMPORAL_NAMESPACE")
    http_host: str = Field("127.0.0.1", alias="HTTP_HOST")
    http_port: int | None = Field(None, alias="HTTP_PORT")
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    # The tokens of calls between Concerto's processes (service_tokens.py, ADR 12): this
    # process's own signing key, if it calls other services (the gateway, payment), and the
    # public key of each caller whose calls it checks, as JSON: {"gateway": "MCowBQYDK2VwAyEA..."}.
    service_signing_key: SecretStr | None = Field(None, alias="SERVICE_SIGNING_KEY")
    service_caller_keys: dict[str, str] = Field(default_factory=dict, alias="SERVICE_CALLER_KEYS")
    # How long published outbox rows and consumed events' inbox rows are kept (housekeeping.py).
    outbox_kept_hours: float = Field(24, alias="OUTBOX_KEPT_HOURS")
    inbox_kept_days: float = Field(30, alias="INBOX_KEPT_DAYS")

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url.replace("{service}", service)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / service}.db"
