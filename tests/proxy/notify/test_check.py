"""`slotwise serve` and `slotwise notify serve` refuse to start when a policy names a webhook
endpoint or an e-mail template that is not there (or not usable), with the code and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from tests.support.notify import new_secret

POLICY = """policy "notify check" version 1

campaign reminder {{
  slot banner at "$.banner.text" {{
    variant plain "Your cart is waiting"
  }}
}}

trigger cart_abandon {{
  on event add_to_cart
  wait 2s
  window 1d
  show campaign reminder
  notify {channel} "{name}"
}}
"""


def _policies(tmp_path: Path, channel: str, name: str) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "p.sw").write_text(POLICY.format(channel=channel, name=name))
    return directory


def _serve(tmp_path: Path, policies: Path, toml: str, command: str = "serve") -> list[str]:
    config = tmp_path / "slotwise.toml"
    config.write_text(toml)
    if command == "serve":
        argv = ["serve", "--upstream", "http://127.0.0.1:1", "--policies", str(policies)]
    else:
        store = f"sqlite:///{tmp_path / 'state.db'}"
        argv = ["notify", "serve", "--store", store, "--policies", str(policies)]
    return [*argv, "--config", str(config)]


@pytest.mark.parametrize("command", ["serve", "notify"])
def test_an_unknown_endpoint_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    policies = _policies(tmp_path, "webhook", "crm")
    argv = _serve(tmp_path, policies, '[webhooks.push]\nurl = "http://127.0.0.1:9/x"\n'
                  'secrets_env = ["PUSH_SECRET"]\n', command)  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "missing_secret" in err and "PUSH_SECRET is not set" in err


def test_each_problem_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSH_SECRET", new_secret())
    policies = _policies(tmp_path, "webhook", "crm")
    push = '[webhooks.push]\nurl = "http://127.0.0.1:9/x"\nsecrets_env = ["PUSH_SECRET"]\n'
    assert main(_serve(tmp_path, policies, push)) == 1
    err = capsys.readouterr().err
    assert "trigger cart_abandon: notify webhook 'crm': unknown_endpoint" in err
    assert "configured: push" in err and "add [webhooks.crm]" in err

    monkeypatch.setenv("PUSH_SECRET", "not-a-secret")
    crm = push.replace("webhooks.push", "webhooks.crm")
    assert main(_serve(tmp_path, policies, crm)) == 1
    assert "bad_secret: a webhook secret must start with whsec_" in capsys.readouterr().err

    assert main(_serve(tmp_path, policies, '[webhooks.crm]\nurl = "ftp://x"\n')) == 1
    assert "[webhooks.crm]: bad_endpoint: url must be" in capsys.readouterr().err


def test_email_needs_smtp_and_every_template_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = _policies(tmp_path, "email", "cart-reminder")
    assert main(_serve(tmp_path, policies, "")) == 1
    assert "no_smtp" in capsys.readouterr().err

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "cart-reminder.subject.txt").write_text("Your cart\n")
    (templates / "cart-reminder.txt").write_text("Hello {{ traits.name }}\n")
    smtp = (
        f'[notify]\nsmtp_host = "127.0.0.1"\nsmtp_from = "shop@example.com"\n'
        f'templates_dir = "{templates}"\n'
    )
    assert main(_serve(tmp_path, policies, smtp)) == 1
    err = capsys.readouterr().err
    assert "unknown_template: no template file cart-reminder.html" in err

    (templates / "cart-reminder.html").write_text("<p>{% if %}</p>\n")
    assert main(_serve(tmp_path, policies, smtp)) == 1
    err = capsys.readouterr().err
    assert f"{templates / 'cart-reminder.html'}:1: bad_template:" in err


def test_a_password_variable_under_slotwise_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = _policies(tmp_path, "email", "cart-reminder")
    name = "SLOTWISE" + "_SMTP"  # (split: no such variable exists, the project reads none)
    toml = f'[notify]\nsmtp_password_env = "{name}"\n'
    assert main(_serve(tmp_path, policies, toml)) == 2
    assert "notify.smtp_password_env" in capsys.readouterr().err


def test_the_dead_letter_commands_need_the_proxies_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'state.db'}"
    assert main(["notify", "dead-letters", "--store", missing]) == 2
    assert "store_not_found" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()  # nothing created
    assert main(["notify", "replay", "--all", "--store", "memory://"]) == 2
    assert "no other process shares" in capsys.readouterr().err
    assert main(["notify", "replay", "--store", f"sqlite:///{tmp_path / 's.db'}"]) == 2
    assert "give one KEY or --all" in capsys.readouterr().err


def test_a_proxy_without_the_sender_leaves_the_check_to_the_sender(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # notify.sender = false: this proxy only queues; `slotwise notify serve` checks and sends
    policies = _policies(tmp_path, "email", "cart-reminder")
    argv = _serve(tmp_path, policies, "[notify]\nsender = false\n")
    assert main([*argv, "--check-config"]) == 0
    assert main(_serve(tmp_path, policies, "")) == 1
    err = capsys.readouterr().err
    assert "no_smtp" in err and "notify.sender = false" in err
