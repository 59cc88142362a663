"""config/techtouch.example.toml: read by the real loader, at the defaults, and complete.

The example lists every setting: active lines at their defaults, and commented-out lines
(`# key = value`, `# [table]`) for settings without a default value or whose default depends
on where techtouch runs. With those lines uncommented the file must still be accepted by the
strict loader (so they are spelled right) and name every field of Settings, sub-models
included: a new setting cannot be forgotten in the example.
"""

from __future__ import annotations

import re
import tomllib
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from techtouch.settings import ConfigError, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "techtouch.example.toml"

# A commented-out setting or table: `# key = value` or `# [table]`, never prose.
_COMMENTED_SETTING = re.compile(r"^#\s?((?:\[[\w.-]+\](?:\s*#.*)?)|(?:[\w.-]+\s*=.*))$")


def uncommented(text: str) -> str:
    return "\n".join(
        match.group(1) if (match := _COMMENTED_SETTING.match(line.strip())) else line
        for line in text.splitlines()
    )


def _model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [m for m in map(_model, get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def field_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every field, recursively; `dict[str, Model]` fields as `senders.*.name`."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        yield path
        if (sub := _model(field.annotation)) is not None:
            yield from field_paths(sub, path)
        elif get_origin(field.annotation) is dict and (entry := _model(get_args(field.annotation)[-1])):
            yield from field_paths(entry, (*path, "*"))


def present(data: Any, path: tuple[str, ...]) -> bool:
    if not path:
        return True
    if not isinstance(data, Mapping):
        return False
    head, rest = path[0], path[1:]
    if head == "*":
        return any(present(value, rest) for value in data.values())
    return head in data and present(data[head], rest)


def load(path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("TECHTOUCH_CONFIG_FILE", str(path))
    return load_settings()


def test_the_example_loads_through_the_strict_loader_and_yields_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = load_settings()  # the autouse fixture points TECHTOUCH_CONFIG_FILE at no file
    from_example = load(EXAMPLE, monkeypatch)
    assert from_example.model_dump() == defaults.model_dump()


def test_the_example_is_read_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A changed value in the example changes the settings: the file is the one being read."""
    changed = tmp_path / "techtouch.toml"
    changed.write_text(EXAMPLE.read_text().replace("max_per_day = 1 ", "max_per_day = 2 ", 1))
    assert load(changed, monkeypatch).delivery.max_per_day == 2
    typo = tmp_path / "typo.toml"
    typo.write_text(EXAMPLE.read_text().replace("max_per_day = 1 ", "max_per_dya = 1 ", 1))
    with pytest.raises(ConfigError, match=r"delivery\.max_per_dya \(did you mean delivery\.max_per_day\?\)"):
        load(typo, monkeypatch)


def test_the_commented_out_settings_are_real_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    full = tmp_path / "techtouch.toml"
    full.write_text(uncommented(EXAMPLE.read_text()))
    settings = load(full, monkeypatch)  # unknown keys would raise ConfigError
    assert settings.secret_key is not None and settings.twilio_from is not None


def test_every_setting_appears_in_the_example() -> None:
    data = tomllib.loads(uncommented(EXAMPLE.read_text()))
    missing = [".".join(path) for path in field_paths(Settings) if not present(data, path)]
    assert not missing, f"settings missing from {EXAMPLE.name}: {', '.join(missing)}"


def test_secrets_are_commented_out() -> None:
    active = tomllib.loads(EXAMPLE.read_text())
    secrets = [name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)]
    assert secrets and not set(secrets) & set(active), "secrets belong in the environment"


def test_the_completeness_check_sees_a_missing_setting() -> None:
    """The check itself: dropping one nested key from the example is noticed."""
    text = re.sub(r"(?m)^neutral_sentiment = .*$", "", uncommented(EXAMPLE.read_text()))
    data = tomllib.loads(text)
    assert not present(data, ("health", "neutral_sentiment"))
    assert present(data, ("senders", "*", "title")) and ("health", "weights", "usage") in set(
        field_paths(Settings)
    )
