"""One typed Settings class: environment (TECHTOUCH_*) wins over config/techtouch.toml.

Secrets are SecretStr so that they never show up in a repr, a log line or a traceback.

A misspelt key must not silently leave a rule at its default (`max_per_dya = 5` would keep
the cap at 1): every key of the TOML file, tables included, must name a setting, else
ConfigError names the key and the file. Environment variables are read by name, so an unknown
top-level TECHTOUCH_* variable is ignored (the prefix is shared with things that are not
settings: TECHTOUCH_CONFIG_FILE, the test suite's TECHTOUCH_TEST_*); but one that reaches into
a table (TECHTOUCH_DELIVERY__MAX_PER_DYA) can only be meant for us and is checked the same way.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
import types
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from techtouch.domain.policy import DEFAULT_SENDERS, Delivery, HealthModel, HealthWeights, Sender

__all__ = [
    "DEFAULT_SENDERS",
    "ConfigError",
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
    """TECHTOUCH_CONFIG_FILE, else techtouch.toml in TECHTOUCH_CONFIG_DIR or the default config dir."""
    explicit = os.environ.get("TECHTOUCH_CONFIG_FILE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("TECHTOUCH_CONFIG_DIR") or _default_dir("config")) / "techtouch.toml"


class ConfigError(ValueError):
    """A configuration file or variable that cannot be read as settings; the message says where."""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a value of this annotation is validated as (`X | None` included)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [m for m in map(_model_of, get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


_Unknown = tuple[tuple[str, ...], tuple[str, ...] | None]


def _unknown_keys(
    fields: Mapping[str, FieldInfo], data: Mapping[str, Any], path: tuple[str, ...]
) -> list[_Unknown]:
    """(path, closest known path or None) of every key in `data` that no field reads.

    Tables are followed into nested models and into the values of `dict[str, Model]` fields
    (`[senders.x]`); the keys of other mappings (`journey_priority`) are data, not names.
    """
    problems: list[_Unknown] = []
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            close = difflib.get_close_matches(key, list(fields), n=1)
            problems.append(((*path, key), (*path, close[0]) if close else None))
            continue
        if not isinstance(value, Mapping):
            continue
        model = _model_of(field.annotation)
        if model is not None:
            problems += _unknown_keys(model.model_fields, value, (*path, key))
        elif get_origin(field.annotation) is dict and (entry := _model_of(get_args(field.annotation)[-1])):
            for name, item in value.items():
                if isinstance(item, Mapping):
                    problems += _unknown_keys(entry.model_fields, item, (*path, key, str(name)))
    return problems


def _describe(unknown: list[_Unknown], name: Callable[[tuple[str, ...]], str]) -> str:
    return ", ".join(
        name(path) + (f" (did you mean {name(close)}?)" if close else "") for path, close in unknown
    )


class _StrictTomlSource(TomlConfigSettingsSource):
    """The TOML file, refused with every unknown key listed rather than partly ignored."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        try:
            super().__init__(settings_cls, toml_file=path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        unknown = _unknown_keys(settings_cls.model_fields, self.toml_data, ())
        if unknown:
            keys = _describe(unknown, ".".join)
            raise ConfigError(f"{path}: unknown setting{'s' if len(unknown) > 1 else ''}: {keys}")


def _env_name(path: tuple[str, ...]) -> str:
    return "TECHTOUCH_" + "__".join(path).upper()


class _NestedEnvCheck(PydanticBaseSettingsSource):
    """The environment source, refusing TECHTOUCH_<TABLE>__<KEY> variables whose key is unknown.

    Only keys inside a table can be found unknown: the environment source reads top-level
    variables by field name, so other TECHTOUCH_* variables never reach it.
    """

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        values = self.inner()
        unknown = _unknown_keys(self.settings_cls.model_fields, values, ())
        if unknown:
            names = _describe(unknown, _env_name)
            raise ConfigError(f"unknown setting{'s' if len(unknown) > 1 else ''} in the environment: {names}")
        return values


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
    render_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="processes that render a delivery's messages (1: the delivering process itself); "
        "claims, sends and marks always stay in the delivering process",
    )
    senders: dict[str, Sender] = Field(
        default_factory=lambda: dict(DEFAULT_SENDERS),
        description="who messages come from, added to the defaults; `csm` is the account's CSM",
    )
    journey_priority: dict[str, int] = Field({}, description="overrides a journey file's priority")

    queue_owner: str | None = Field(
        None, description="who receives the CSM digest for CTAs in the team queue (an email address)"
    )

    email_channel: Literal["outbox", "sendgrid"] = "outbox"
    sms_channel: Literal["outbox", "twilio"] = "outbox"
    public_url: str = Field("http://127.0.0.1:8000", description="base of links in messages and webhooks")
    secret_key: SecretStr | None = Field(None, description="signs unsubscribe, survey and preference links")
    # Rotation: the new key becomes secret_key, the old one goes here; links it signed keep working
    # until it is removed. The environment takes a comma-separated list (or a JSON array).
    previous_secret_keys: Annotated[list[SecretStr], NoDecode] = Field(
        [], description="earlier link-signing keys: links they signed still verify; new links use secret_key"
    )

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
    webhook_max_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="`serve`: the largest SendGrid Event Webhook body accepted, in bytes (413 above; "
        "SendGrid posts batches of up to 768 KiB)",
    )
    webhook_max_events: int = Field(
        10_000, ge=1, description="`serve`: the most events one SendGrid webhook POST may carry (413 above)"
    )
    session_idle_hours: float = Field(
        12,
        gt=0,
        le=24 * 30,
        description="`serve`: a workspace session ends after this long without a request",
    )
    session_lifetime_days: float = Field(
        7, gt=0, le=90, description="`serve`: a workspace session ends this long after sign-in, however used"
    )
    form_max_bytes: int = Field(
        65_536,
        ge=1024,
        description="`serve`: the largest body of any other request (Twilio callbacks, link forms), "
        "in bytes (413 above)",
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

    @field_validator("senders", mode="before")
    @classmethod
    def _add_to_default_senders(cls, value: Any) -> Any:
        """`[senders.billing]` adds a sender: the journeys' `success`, `vp_cs` and `support` stay
        defined unless a sender of that very name replaces one of them."""
        if isinstance(value, Mapping):
            return {**DEFAULT_SENDERS, **value}
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA timezone {value!r}") from None
        return value

    @field_validator("previous_secret_keys", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        """`TECHTOUCH_PREVIOUS_SECRET_KEYS=old1,old2` (or a JSON array); blanks are dropped."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("previous_secret_keys")
    @classmethod
    def _keys_not_blank(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not key.get_secret_value().strip() for key in value):
            raise ValueError("a previous secret key must not be empty")
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
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _NestedEnvCheck(settings_cls, env_settings),
        ]
        path = config_file()
        if path.is_file():
            sources.append(_StrictTomlSource(settings_cls, path))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Read settings now (not at import), so that tests and commands see their own environment."""
    return Settings(**overrides)
