"""Configuration: file + environment + flags, validated once with every problem named."""

from __future__ import annotations

from pathlib import Path

import pytest

from slotwise.proxy.config import KEYS, TABLES, ConfigError, Settings, load_settings


def test_defaults_file_env_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "slotwise.toml"
    path.write_text(
        '[upstream]\nurl = "http://ads:8000"\ntimeout = 3\n'
        '[proxy]\ntrusted_proxies = ["10.0.0.0/8"]\ndecision_deadline_ms = 5\n'
    )
    env = {"SLOTWISE_UPSTREAM_TIMEOUT": "4.5", "SLOTWISE_PROXY_PORT": "9000"}
    settings = load_settings(path, env, {"proxy.port": 9100, "proxy.workers": None})
    assert settings.upstream_url == "http://ads:8000"
    assert settings.upstream_timeout == 4.5  # the environment wins over the file
    assert settings.proxy_port == 9100  # flags win over both
    assert settings.proxy_trusted_proxies == ("10.0.0.0/8",)
    assert settings.proxy_decision_deadline_ms == 5.0
    assert settings.proxy_workers == 1


def test_every_problem_is_reported_with_where(tmp_path: Path) -> None:
    path = tmp_path / "slotwise.toml"
    path.write_text(
        '[upstream]\nurl = "ftp://x"\ntimeuot = 3\n[proxy]\nport = "eighty"\n'
        'trusted_proxies = ["nope"]\n[tracking]\nsecret = "short"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"SLOTWISE_PROXY_MAX_BODY_BYTES": "-1"})
    text = str(caught.value)
    assert "unknown key 'upstream.timeuot' (did you mean 'upstream.timeout'?)" in text
    assert "proxy.port: must be an integer, not 'eighty'" in text
    assert "environment SLOTWISE_PROXY_MAX_BODY_BYTES: must be at least 0, not -1" in text
    assert "upstream.url: upstream URL 'ftp://x' must start with http://" in text
    assert "proxy.trusted_proxies" in text and "tracking.secret" in text
    assert caught.value.code == "config_invalid"


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.toml", {})
    bad = tmp_path / "bad.toml"
    bad.write_text("[upstream\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path, {})  # a directory
    for key, value in [("upstream.timeout", "nan"), ("upstream.read_timeout", "inf")]:
        with pytest.raises(ConfigError, match="must be a finite number"):
            load_settings(None, {}, overrides={key: value})


def test_settings_round_trip_through_the_environment() -> None:
    settings = Settings(upstream_url="http://a:1", proxy_trusted_proxies=("10.0.0.0/8", "::1"))
    assert load_settings(None, settings.to_env()) == settings
    assert {key.attribute for key in KEYS} | set(TABLES) == set(Settings.__dataclass_fields__)


def test_tables_for_events_and_plugins_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "slotwise.toml"
    path.write_text(
        "[events]\nmax_batch_events = 50\n[plugins.consent]\nvendor_id = 755\n"
        '[plugins.weather]\napi_url = "http://127.0.0.1:9"\n[bandit]\nmodels_dir = "m"\n'
    )
    settings = load_settings(path, {})
    assert settings.events == {"max_batch_events": 50}
    assert settings.plugins == {
        "consent": {"vendor_id": 755},
        "weather": {"api_url": "http://127.0.0.1:9"},
    }
    assert settings.bandit_models_dir == "m"
    assert load_settings(None, settings.to_env()) == settings


def test_bad_tables_are_named(tmp_path: Path) -> None:
    path = tmp_path / "slotwise.toml"
    path.write_text("[events]\nmax_batch_events = -1\nbogus = 1\n[plugins]\nconsent = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"SLOTWISE_PLUGINS_CONFIG": "{not json"})
    text = str(caught.value)
    assert "[events]" in text
    assert "environment SLOTWISE_PLUGINS_CONFIG: not valid JSON" in text
