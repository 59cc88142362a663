"""Settings: TOML file and environment, where a typo is an error rather than a silent default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from techtouch.settings import (
    DEFAULT_SENDERS,
    PROJECT_ROOT,
    ConfigError,
    Sender,
    Settings,
    config_file,
    load_settings,
)


@pytest.fixture
def toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A techtouch.toml of the test's own; write it before calling load_settings()."""
    path = tmp_path / "techtouch.toml"
    monkeypatch.setenv("TECHTOUCH_CONFIG_FILE", str(path))
    return path


def test_tests_see_defaults_with_the_repository_journeys_and_templates() -> None:
    """The conftest fixture hides a developer's config file, not the repository's directories."""
    assert not config_file().exists()
    settings = load_settings()
    assert settings.delivery.max_per_day == 1
    assert settings.senders == DEFAULT_SENDERS
    assert settings.config_dir.resolve() == PROJECT_ROOT / "config"
    assert settings.templates_dir.resolve() == PROJECT_ROOT / "templates"
    assert (settings.config_dir / "journeys").is_dir()


def test_the_toml_file_sets_values_in_nested_tables(toml: Path) -> None:
    toml.write_text(
        'timezone = "Europe/Paris"\n'
        "[delivery]\nmax_per_day = 2\n"
        "[health]\ngreen = 80\n[health.weights]\nusage = 0.5\n"
        "[journey_priority]\nrenewal = 5\n"
    )
    settings = load_settings()
    assert settings.timezone == "Europe/Paris"
    assert settings.delivery.max_per_day == 2
    assert settings.delivery.max_per_7d == 3, "keys not in the file keep their defaults"
    assert settings.health.green == 80
    assert settings.health.weights.usage == 0.5
    assert settings.journey_priority == {"renewal": 5}


def test_the_environment_wins_over_the_file(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml.write_text("[delivery]\nmax_per_day = 2\nmax_per_7d = 4\n")
    monkeypatch.setenv("TECHTOUCH_DELIVERY__MAX_PER_DAY", "3")
    settings = load_settings()
    assert (settings.delivery.max_per_day, settings.delivery.max_per_7d) == (3, 4)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("[delivery]\nmax_per_dya = 5\n", "delivery.max_per_dya (did you mean delivery.max_per_day?)"),
        ("max_per_day = 5\n", "max_per_day"),  # a [delivery] key at the top level
        ("timezon = 'UTC'\n", "timezone?"),
        ("[health]\nyelow = 40\n", "health.yelow"),
        ("[health.weights]\nusge = 1\n", "health.weights.usge"),
        ("[senders.billing]\nname = 'B'\nemail = 'b@x.example'\ntitel = 'x'\n", "senders.billing.titel"),
        ("[senders.success]\nmail = 's@x.example'\n", "senders.success.mail"),
        ("[nonsense]\nx = 1\n", "nonsense"),
    ],
)
def test_an_unknown_key_in_the_file_is_an_error_naming_the_key_and_the_file(
    toml: Path, content: str, named: str
) -> None:
    toml.write_text(content)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(toml) in str(raised.value)
    assert named in str(raised.value)


def test_every_unknown_key_is_named_at_once(toml: Path) -> None:
    toml.write_text("colour = 1\n[delivery]\nmax_per_dya = 5\nbusiness_strat = '08:00'\n")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "unknown settings: colour, delivery.max_per_dya (did you mean" in str(raised.value)
    assert "delivery.business_strat (did you mean delivery.business_start?)" in str(raised.value)


def test_keys_of_a_free_mapping_are_data_not_setting_names(toml: Path) -> None:
    toml.write_text("[journey_priority]\nany_journey_id = 3\n[delivery.cta_due_days]\nurgent = 0\n")
    settings = load_settings()
    assert settings.journey_priority == {"any_journey_id": 3}
    assert settings.delivery.cta_due_days["urgent"] == 0


def test_invalid_toml_names_the_file(toml: Path) -> None:
    toml.write_text("[delivery\nmax_per_day = 2\n")
    with pytest.raises(ConfigError, match=re.escape(f"{toml}: not valid TOML")):
        load_settings()


def test_unknown_top_level_environment_variables_are_tolerated(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TECHTOUCH_ prefix is shared by variables that are not settings (TECHTOUCH_CONFIG_FILE,
    the test suite's TECHTOUCH_TEST_*, a deployment's own)."""
    monkeypatch.setenv("TECHTOUCH_SOMETHING_ELSE", "1")
    monkeypatch.setenv("TECHTOUCH_TEST_WHATEVER", "x")
    assert load_settings().delivery.max_per_day == 1


def test_an_unknown_key_inside_a_table_in_the_environment_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TECHTOUCH_DELIVERY__... can only be meant for the [delivery] settings."""
    monkeypatch.setenv("TECHTOUCH_DELIVERY__MAX_PER_DYA", "5")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "TECHTOUCH_DELIVERY__MAX_PER_DYA (did you mean TECHTOUCH_DELIVERY__MAX_PER_DAY?)" in str(
        raised.value
    )


def test_senders_in_the_file_add_to_the_default_senders(toml: Path) -> None:
    toml.write_text(
        "[senders.billing]\nname = 'Billing team'\nemail = 'billing@techtouch.example'\ntitle = 'Billing'\n"
    )
    senders = load_settings().senders
    assert senders["billing"] == Sender(
        name="Billing team", email="billing@techtouch.example", title="Billing"
    )
    for key, default in DEFAULT_SENDERS.items():
        assert senders[key] == default, f"{key} must stay defined: journeys refer to it"


def test_a_sender_named_like_a_default_replaces_only_that_one(toml: Path) -> None:
    toml.write_text("[senders.vp_cs]\nname = 'Sam Rivera'\nemail = 'sam.rivera@techtouch.example'\n")
    senders = load_settings().senders
    assert senders["vp_cs"] == Sender(name="Sam Rivera", email="sam.rivera@techtouch.example")
    assert senders["success"] == DEFAULT_SENDERS["success"]
    assert senders["support"] == DEFAULT_SENDERS["support"]
    assert set(senders) == set(DEFAULT_SENDERS)


def test_a_sender_needs_its_required_fields(toml: Path) -> None:
    toml.write_text("[senders.billing]\nname = 'Billing team'\n")
    with pytest.raises(ValueError, match=re.escape("senders.billing.email")):
        load_settings()


def test_senders_from_the_environment_add_to_the_defaults_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TECHTOUCH_SENDERS__BILLING__NAME", "Billing")
    monkeypatch.setenv("TECHTOUCH_SENDERS__BILLING__EMAIL", "billing@techtouch.example")
    senders = load_settings().senders
    assert senders["billing"].email == "billing@techtouch.example"
    assert set(DEFAULT_SENDERS) < set(senders)


def test_the_default_senders_are_not_shared_between_settings() -> None:
    first, second = Settings(), Settings()
    first.senders["extra"] = Sender(name="x", email="x@techtouch.example")
    assert "extra" not in second.senders
    assert "extra" not in DEFAULT_SENDERS
