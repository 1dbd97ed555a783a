"""Configuration: one model; file + environment + flags, validated once with every problem named."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from slotwise.proxy.config import (
    KEYS,
    NOT_SETTINGS,
    RENAMED,
    TABLES,
    ConfigError,
    Settings,
    key_table,
    load_settings,
)
from slotwise.proxy.events import EventsConfig

REPO = Path(__file__).resolve().parents[2]


def test_defaults_file_env_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "slotwise.toml"
    path.write_text(
        '[upstream]\nurl = "http://ads:8000"\ntimeout = 3\n'
        '[proxy]\ntrusted_proxies = ["10.0.0.0/8"]\ndecision_deadline_ms = 5\n'
    )
    env = {"SLOTWISE_UPSTREAM_TIMEOUT": "4.5", "SLOTWISE_PROXY_PORT": "9000"}
    settings = load_settings(path, env, {"proxy.port": 9100, "proxy.workers": None})
    assert settings.upstream.url == "http://ads:8000"
    assert settings.upstream.timeout == 4.5  # the environment wins over the file
    assert settings.proxy.port == 9100  # flags win over both
    assert settings.proxy.trusted_proxies == ("10.0.0.0/8",)
    assert settings.proxy.decision_deadline_ms == 5.0
    assert settings.proxy.workers == 1


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
    assert caught.value.exit_code == 2
    assert sorted(set(caught.value.codes)) == ["invalid_value", "unknown_key"]


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.toml", {})
    bad = tmp_path / "bad.toml"
    bad.write_text("[upstream\n")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_settings(bad, {})
    assert caught.value.codes == ("config_unreadable",)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path, {})  # a directory
    for key, value in [("upstream.timeout", "nan"), ("upstream.read_timeout", "inf")]:
        with pytest.raises(ConfigError, match="must be a finite number"):
            load_settings(None, {}, overrides={key: value})


def test_settings_round_trip_through_the_environment() -> None:
    settings = Settings.of(
        upstream_url="http://a:1",
        proxy_trusted_proxies=("10.0.0.0/8", "::1"),
        events_honor_gpc=False,
        events_admin_token="t" * 16,
        adapters_json_click_urls=(),
    )
    assert load_settings(None, settings.to_env()) == settings
    assert load_settings(None, Settings().to_env()) == Settings()
    sections = {f.name for f in msgspec.structs.fields(Settings)}
    assert {key.section for key in KEYS} | set(TABLES) == sections


def test_tables_for_events_and_plugins_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "slotwise.toml"
    path.write_text(
        "[events]\nmax_batch_events = 50\n[plugins.consent]\nvendor_id = 755\n"
        '[plugins.weather]\napi_url = "http://127.0.0.1:9"\n[bandit]\nmodels_dir = "m"\n'
    )
    settings = load_settings(path, {})
    assert settings.events == EventsConfig(max_batch_events=50)
    assert settings.plugins == {
        "consent": {"vendor_id": 755},
        "weather": {"api_url": "http://127.0.0.1:9"},
    }
    assert settings.bandit.models_dir == "m"
    assert load_settings(None, settings.to_env()) == settings


def test_bad_tables_are_named(tmp_path: Path) -> None:
    path = tmp_path / "slotwise.toml"
    path.write_text("[events]\nmax_batch_events = -1\nbogus = 1\n[plugins]\nconsent = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"SLOTWISE_PLUGINS_CONFIG": "{not json"})
    text = str(caught.value)
    assert "[events]" in text
    assert "events.max_batch_events: must be more than 0, not -1" in text
    assert "'plugins.consent' must be a [plugins.consent] table" in text
    assert "environment SLOTWISE_PLUGINS_CONFIG: not valid JSON" in text


# -- one model: every key declared once, the docs table is the model ---------------------------


def test_the_docs_key_table_is_the_model() -> None:
    docs = (REPO / "docs" / "proxy.md").read_text()
    section = docs.split("## Configuration keys", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    assert table == key_table(), (
        "docs/proxy.md's key table differs from the configuration model; paste "
        "slotwise.proxy.config.key_table() into it"
    )


def test_every_key_has_one_default_one_variable_and_help() -> None:
    names = [key.full for key in KEYS]
    variables = [key.env for key in KEYS] + list(TABLES.values())
    assert len(set(names)) == len(names) and len(set(variables)) == len(variables)
    assert not set(variables) & (set(NOT_SETTINGS) | set(RENAMED))
    defaults = Settings()
    for key in KEYS:
        assert key.help, f"{key.full} has no help"
        assert getattr(getattr(defaults, key.section), key.name) == key.default
        assert key.env.startswith("SLOTWISE_")
    # each default is valid: reading the defaults back through the loader changes nothing
    assert load_settings(None, {}) == defaults


def test_events_keys_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "slotwise.toml"
    path.write_text('[events]\nhonor_gpc = false\nconsent_default = "personal"\n')
    env = {
        "SLOTWISE_EVENTS_MAX_BATCH_EVENTS": "10",
        "SLOTWISE_EVENTS_ADMIN_LOOPBACK_ONLY": "0",
        "SLOTWISE_ADMIN_TOKEN": "a" * 20,
    }
    events = load_settings(path, env).events
    assert (events.honor_gpc, events.consent_default) == (False, "personal")
    assert (events.max_batch_events, events.admin_loopback_only) == (10, False)
    assert events.admin_token == "a" * 20
    bad = {"SLOTWISE_EVENTS_HONOR_GPC": "maybe", "SLOTWISE_EVENTS_CONSENT_DEFAULT": "all"}
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {**bad, "SLOTWISE_ADMIN_TOKEN": "short"})
    text = str(caught.value)
    assert "environment SLOTWISE_EVENTS_HONOR_GPC: must be true or false, not 'maybe'" in text
    assert "must be one of personal, contextual, not 'all'" in text
    assert "SLOTWISE_ADMIN_TOKEN (events.admin_token): must be at least 16 characters" in text
    with pytest.raises(ConfigError, match=r"\[events\]: max_event_bytes cannot exceed"):
        load_settings(None, {"SLOTWISE_EVENTS_MAX_EVENT_BYTES": "600000"})


# -- unknown and renamed names -------------------------------------------------------------------


def test_unknown_keys_in_the_file_are_errors_with_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "slotwise.toml"
    path.write_text(
        'port = 80\n[upstrem]\nurl = "http://a:1"\n[proxy]\nwokers = 2\n[events]\nbogus = 1\n'
        "[nothing]\nx = 1\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    text = str(caught.value)
    assert f"{path}: unknown key 'port' (did you mean 'proxy.port'?)" in text
    assert "unknown key 'upstrem.url' (did you mean 'upstream.url'?)" in text
    assert "unknown key 'proxy.wokers' (did you mean 'proxy.workers'?)" in text
    assert "unknown key 'events.bogus' ([events] has max_event_bytes, " in text
    assert "unknown key 'nothing.x' (the sections are upstream, proxy, " in text
    assert set(caught.value.codes) == {"unknown_key"}


def test_unknown_variables_are_errors_with_did_you_mean() -> None:
    env = {"SLOTWISE_PROXY_WORKER": "2", "SLOTWISE_ZZZ": "1", "OTHER_THING": "x"}
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env)
    text = str(caught.value)
    assert (
        "environment SLOTWISE_PROXY_WORKER: is not a slotwise setting "
        "(did you mean SLOTWISE_PROXY_WORKERS?)"
    ) in text
    assert "environment SLOTWISE_ZZZ: is not a slotwise setting (unset it;" in text
    assert "OTHER_THING" not in text
    assert caught.value.codes == ("unknown_variable", "unknown_variable")
    # the variables that are not settings are not errors
    allowed = {"SLOTWISE_CONFIG": "x.toml", "SLOTWISE_DEBUG": "1", "SLOTWISE_PLUGINS": "none"}
    assert load_settings(None, allowed) == Settings()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("SLOTWISE_MODELS_DIR", "set SLOTWISE_BANDIT_MODELS_DIR instead"),
        ("SLOTWISE_STORE", "set SLOTWISE_STORE_URL instead"),
        ("SLOTWISE_EVENTS_CONFIG", "set one variable per [events] key instead, e.g. "),
    ],
)
def test_renamed_variables_are_errors_naming_the_new_name(old: str, new: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {old: "x"})
    assert f"environment {old}: is no longer read ({new}" in str(caught.value)
    assert caught.value.codes == ("renamed_variable",)


def test_every_slotwise_variable_the_project_names_is_known() -> None:
    """A variable named in code, tests, examples or docs is a setting, a table, one of the
    non-settings or a renamed one: nothing is read behind the model's back."""
    known = {key.env for key in KEYS} | set(TABLES.values()) | set(NOT_SETTINGS) | set(RENAMED)
    # in prose: patterns, and the misspelt one of docs/proxy.md's example
    placeholders = {"SLOTWISE_SECTION_NAME", "SLOTWISE_EVENTS", "SLOTWISE_EVENTS_NAME"}
    placeholders.add("SLOTWISE_PROXY_WORKER")
    found: dict[str, str] = {}
    for folder in (
        "dsl",
        "proxy",
        "plugins",
        "lab",
        "testing",
        "examples",
        "tests",
        "docs",
        "scripts",
    ):
        for path in (REPO / folder).rglob("*"):
            if path.suffix not in {".py", ".md", ".toml", ".sh", ".js", ".yml", ".yaml"}:
                continue
            if path == Path(__file__):  # names wrong ones on purpose
                continue
            for name in re.findall(
                r"SLOTWISE_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="replace")
            ):
                found.setdefault(name, str(path.relative_to(REPO)))
    unknown = {n: where for n, where in found.items() if n not in known | placeholders}
    assert not unknown, f"SLOTWISE_ variables outside the configuration model: {unknown}"


def test_settings_of_and_replace_name_keys_as_section_name() -> None:
    settings = Settings.of(proxy_port=9000, events={"max_batch_events": 2}, plugins={"x": {}})
    assert settings.proxy.port == 9000 and settings.events.max_batch_events == 2
    assert settings.replace(upstream_url="http://b:2").upstream.url == "http://b:2"
    with pytest.raises(TypeError, match="no setting 'proxy_prot'"):
        Settings.of(proxy_prot=1)


def test_remembered_contexts_is_a_setting_with_a_clear_error() -> None:
    env = {"SLOTWISE_BANDIT_REMEMBERED_CONTEXTS": "1024"}
    assert load_settings(None, env).bandit.remembered_contexts == 1024
    assert load_settings(None, {}).bandit.remembered_contexts == 8192
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"SLOTWISE_BANDIT_REMEMBERED_CONTEXTS": "-1"})
    assert "SLOTWISE_BANDIT_REMEMBERED_CONTEXTS: must be at least 0, not -1" in str(caught.value)
