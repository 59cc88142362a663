"""One typed Settings class: environment (TECHTOUCH_*) wins over config/techtouch.toml.

Secrets are SecretStr so that they never show up in a repr, a log line or a traceback.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_dir(name: str) -> Path:
    """`./config` when run from a project checkout, else the one next to the package."""
    return Path(name) if Path(name).is_dir() else PROJECT_ROOT / name


def config_file() -> Path:
    explicit = os.environ.get("TECHTOUCH_CONFIG_FILE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("TECHTOUCH_CONFIG_DIR") or _default_dir("config")) / "techtouch.toml"


class HealthWeights(BaseModel):
    usage: float = Field(0.35, ge=0)
    engagement: float = Field(0.20, ge=0)
    sentiment: float = Field(0.25, ge=0)
    renewal: float = Field(0.20, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> HealthWeights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one health weight must be positive")
        return self


class HealthModel(BaseModel):
    """Weighted dimensions scored 0-100, bucketed red / yellow / green (handbook ch. 9)."""

    weights: HealthWeights = HealthWeights()
    green: float = Field(70, ge=0, le=100, description="score at or above: green")
    yellow: float = Field(45, ge=0, le=100, description="score at or above: yellow; below: red")
    active_days_target: int = Field(20, gt=0, description="active days in 30 that count as full usage")
    neutral_sentiment: float = Field(60, ge=0, le=100, description="sentiment when no survey answered")
    renewal_window_days: int = Field(120, gt=0, description="renewal proximity starts to weigh inside it")

    @model_validator(mode="after")
    def _ordered(self) -> HealthModel:
        if self.yellow > self.green:
            raise ValueError(f"health.yellow ({self.yellow}) must not exceed health.green ({self.green})")
        return self


class Sender(BaseModel):
    name: str
    email: str
    title: str = ""


DEFAULT_SENDERS = {
    "success": Sender(
        name="The Customer Success team", email="success@techtouch.example", title="Customer Success"
    ),
    "vp_cs": Sender(
        name="Dana Whitfield", email="dana.whitfield@techtouch.example", title="VP of Customer Success"
    ),
    "support": Sender(name="Support", email="support@techtouch.example", title="Support"),
}


class Delivery(BaseModel):
    """Rules that hold across journeys: frequency caps and the recipient's business hours."""

    max_per_day: int = Field(1, ge=1, description="automated messages per contact per day")
    max_per_7d: int = Field(3, ge=1, description="automated messages per contact per rolling 7 days")
    business_start: str = Field("09:00", description="local time sends may start")
    business_end: str = Field("17:00", description="local time sends must be scheduled before")
    business_days: list[int] = Field([0, 1, 2, 3, 4], description="weekdays, Monday = 0")
    cta_due_days: dict[str, int] = {"high": 1, "medium": 3, "low": 7}
    reconcile_after_minutes: float = Field(
        60,
        ge=0,
        description="an ambiguous email attempt with no provider event after this long is sent again",
    )
    claim_lease_minutes: float = Field(
        10, ge=0, description="a delivery attempt younger than this may still be in flight: left alone"
    )

    @model_validator(mode="after")
    def _hours(self) -> Delivery:
        from datetime import time

        try:
            start, end = time.fromisoformat(self.business_start), time.fromisoformat(self.business_end)
        except ValueError:
            raise ValueError("business_start and business_end must be HH:MM") from None
        if start >= end:
            raise ValueError("business_start must be before business_end")
        if not self.business_days or not set(self.business_days) <= set(range(7)):
            raise ValueError("business_days must be weekdays 0-6 (Monday = 0)")
        return self


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
