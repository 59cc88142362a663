"""One typed Settings class: environment (TECHTOUCH_*) wins over config/techtouch.toml.

Secrets are SecretStr so that they never show up in a repr, a log line or a traceback.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from techtouch.domain.policy import DEFAULT_SENDERS, Delivery, HealthModel, HealthWeights, Sender

__all__ = [
    "DEFAULT_SENDERS",
    "Delivery",
    "HealthModel",
    "HealthWeights",
    "Sender",
    "Settings",
    "load_settings",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_dir(name: str) -> Path:
    """`./config` when run from a project checkout, else the one next to the package."""
    return Path(name) if Path(name).is_dir() else PROJECT_ROOT / name


def config_file() -> Path:
    explicit = os.environ.get("TECHTOUCH_CONFIG_FILE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("TECHTOUCH_CONFIG_DIR") or _default_dir("config")) / "techtouch.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TECHTOUCH_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    database_url: str = Field(
        "sqlite:///techtouch.db", description="SQLAlchemy URL; SQLite file in the working directory"
    )
    outbox_dir: Path = Field(Path("outbox"), description="where the outbox channel writes messages")
    config_dir: Path = Field(default_factory=lambda: _default_dir("config"))
    templates_dir: Path = Field(default_factory=lambda: _default_dir("templates"))
    timezone: str = Field("UTC", description="the CS team's timezone; default for accounts without one")
    run_time: str = Field("07:00", description="local time in `timezone` that `--as-of DATE` stands for")
    team_queue: str = Field("queue:cs", description="assignee of CTAs for accounts without a CSM")
    high_touch_arr: float = Field(100_000, ge=0, description="seed: ARR from which accounts are high-touch")
    health: HealthModel = HealthModel()
    delivery: Delivery = Delivery()
    senders: dict[str, Sender] = Field(
        default_factory=lambda: dict(DEFAULT_SENDERS),
        description="who messages come from; `csm` is the account's CSM (else `success`)",
    )
    journey_priority: dict[str, int] = Field({}, description="overrides a journey file's priority")

    queue_owner: str | None = Field(
        None, description="who receives the CSM digest for CTAs in the team queue (an email address)"
    )

    email_channel: Literal["outbox", "sendgrid"] = "outbox"
    sms_channel: Literal["outbox", "twilio"] = "outbox"
    public_url: str = Field("http://127.0.0.1:8000", description="base of links in messages and webhooks")
    secret_key: SecretStr | None = Field(None, description="signs unsubscribe, survey and preference links")

    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str = Field("https://api.sendgrid.com", description="tests point it at loopback")
    sendgrid_webhook_public_key: str | None = Field(
        None, description="the Event Webhook's ECDSA public key (base64), to verify signed events"
    )
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_from: str | None = Field(None, description="E.164 sender when no messaging service is set")
    twilio_base_url: str = Field("https://api.twilio.com", description="tests point it at loopback")
    twilio_mps: float = Field(10.0, gt=0, description="messages per second the SMS channel never exceeds")
    sms_help_text: str | None = Field(
        None, description="the answer to an inbound HELP (default: who we are and how to stop)"
    )

    @model_validator(mode="after")
    def _provider_settings(self) -> Settings:
        """A provider channel without its credentials fails here, not at the first send."""
        missing = []
        if self.email_channel == "sendgrid" and self.sendgrid_api_key is None:
            missing.append("TECHTOUCH_SENDGRID_API_KEY")
        if self.sms_channel == "twilio":
            if not self.twilio_account_sid:
                missing.append("TECHTOUCH_TWILIO_ACCOUNT_SID")
            if self.twilio_auth_token is None:
                missing.append("TECHTOUCH_TWILIO_AUTH_TOKEN")
            if not (self.twilio_messaging_service_sid or self.twilio_from):
                missing.append("TECHTOUCH_TWILIO_MESSAGING_SERVICE_SID or TECHTOUCH_TWILIO_FROM")
        if missing:
            raise ValueError(f"the configured channels need {', '.join(missing)}")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {value!r}") from None
        return value

    @field_validator("team_queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if not value.startswith("queue:") or len(value) <= len("queue:"):
            raise ValueError(f"team_queue must look like 'queue:<name>', got {value!r}")
        return value

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Read settings now (not at import), so that tests and commands see their own environment."""
    return Settings(**overrides)
