"""E-mail through a real SMTP server started by the test (aiosmtpd: STARTTLS and AUTH
required): the policy's template rendered with traits and offer, text + HTML; a missing address,
a failing template and a refused recipient are dead letters with their reason; a dropped
session, a refused connection and a 451 are retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slotwise.proxy.loopback import free_port
from slotwise.proxy.notify.runtime import build_sender
from slotwise.proxy.notify.schedule import dead_letters
from slotwise.proxy.state import open_store
from tests.proxy.notify.helpers import note, put, run_until, settings
from tests.support.notify import SmtpSink, dropping_server, smtp_server

PASSWORD_VAR = "TEST_SMTP_PASSWORD"


def write_templates(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cart-reminder.subject.txt").write_text(
        "{{ traits.name }}, your cart is waiting\n"
    )
    (directory / "cart-reminder.txt").write_text(
        "Hello {{ traits.name }},\n{% if offer %}Take {{ offer.value }}% off.{% endif %}\n"
    )
    (directory / "cart-reminder.html").write_text(
        "<p>Hello {{ traits.name }}</p>{% if offer %}<p>{{ offer.value }}% off</p>{% endif %}\n"
    )
    (directory / "broken.subject.txt").write_text("Hi\n")
    (directory / "broken.txt").write_text("{{ traits.name.upper() }} {{ traits.missing }}\n")
    (directory / "broken.html").write_text("<p>hi</p>\n")
    return directory


def mail_settings(tmp_path: Path, sink: SmtpSink | None, port: int | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    extra.setdefault("smtp_security", "starttls")
    return settings(
        templates_dir=str(write_templates(tmp_path / "templates")),
        smtp_host="127.0.0.1",
        smtp_port=port or (sink.port if sink else 25),
        smtp_ca_file=str(sink.ca_file) if sink else "",
        smtp_username=sink.username if sink else "",
        smtp_password_env=PASSWORD_VAR if sink else "",
        smtp_from="offers@shop.example",
        **extra,
    )


def email(subject: str, **traits: Any):  # type: ignore[no-untyped-def]
    return note(subject, channel="email", template="cart-reminder", traits=traits, episode=1.0)


async def test_the_template_is_rendered_and_sent_over_starttls_with_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server(tmp_path) as sink:
        monkeypatch.setenv(PASSWORD_VAR, sink.password)
        async with open_store("memory://") as store:
            sender = build_sender(mail_settings(tmp_path, sink), store)
            n = email("u1", name="<Ada>", email="ada@example.com")
            await put(store, n)
            await run_until(sender, lambda: len(sink.messages) == 1)
        [message] = sink.messages
        assert sink.logins == 1
        assert message["To"] == "ada@example.com"
        assert message["From"] == "offers@shop.example"
        assert message["Subject"] == "<Ada>, your cart is waiting"
        assert message["X-Slotwise-Notification"] == n.key
        assert message["Message-ID"].endswith("@shop.example>")
        parts = {
            p.get_content_type(): p.get_payload(decode=True).decode()
            for p in message.walk()
            if not p.is_multipart()
        }
        assert "Hello <Ada>," in parts["text/plain"] and "Take 10% off." in parts["text/plain"]
        # the HTML part escapes what the user gave
        assert "<p>Hello &lt;Ada&gt;</p>" in parts["text/html"]


async def test_permanent_failures_are_dead_letters_with_their_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server(tmp_path) as sink:
        monkeypatch.setenv(PASSWORD_VAR, sink.password)
        sink.refuse_rcpt.add("gone@example.com")
        async with open_store("memory://") as store:
            sender = build_sender(mail_settings(tmp_path, sink), store)
            broken = note("u3", channel="email", template="broken", traits={"email": "b@x.io"})
            await put(store, email("u1"), email("u2", name="Bo", email="gone@example.com"), broken)
            await run_until(sender, lambda: sender.counts.get("dead_lettered") == 3)
            reasons = {x.subject: x.reason for x in await dead_letters(store)}
        assert reasons["u1"].startswith("no_address")
        assert reasons["u2"].startswith("recipient_refused: 550")
        assert reasons["u3"].startswith("template_error: broken: UndefinedError")
        assert sink.messages == []


async def test_deferred_data_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with smtp_server(tmp_path) as sink:
        monkeypatch.setenv(PASSWORD_VAR, sink.password)
        sink.defer_data = 2
        async with open_store("memory://") as store:
            sender = build_sender(mail_settings(tmp_path, sink), store)
            await put(store, email("u1", name="Ada", email="ada@example.com"))
            await run_until(sender, lambda: len(sink.messages) == 1)
        assert sender.counts == {"retried": 2, "sent": 1}


@pytest.mark.parametrize("server", ["refused", "dropped"])
async def test_an_unreachable_or_dropping_server_is_retried_then_dead_lettered(
    server: str, tmp_path: Path
) -> None:
    async with open_store("memory://") as store:
        if server == "refused":
            sender = build_sender(mail_settings(tmp_path, None, free_port(), max_attempts=3), store)
            await put(store, email("u1", name="Ada", email="ada@example.com"))
            await run_until(sender, lambda: sender.counts.get("dead_lettered") == 1)
        else:
            with dropping_server() as port:
                sender = build_sender(mail_settings(tmp_path, None, port, max_attempts=3), store)
                await put(store, email("u1", name="Ada", email="ada@example.com"))
                await run_until(sender, lambda: sender.counts.get("dead_lettered") == 1)
        [letter] = await dead_letters(store)
        assert letter.attempts == 3 and letter.reason.startswith("connection:")
        assert sender.counts["retried"] == 2


async def test_implicit_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with smtp_server(tmp_path, implicit_tls=True) as sink:
        monkeypatch.setenv(PASSWORD_VAR, sink.password)
        async with open_store("memory://") as store:
            sender = build_sender(mail_settings(tmp_path, sink, smtp_security="tls"), store)
            await put(store, email("u1", name="Ada", email="ada@example.com"))
            await run_until(sender, lambda: len(sink.messages) == 1)
        assert sink.logins == 1


async def test_starttls_against_a_server_without_it_is_retried_not_sent_in_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server(tmp_path, implicit_tls=True) as sink:  # speaks TLS at once, not STARTTLS
        monkeypatch.setenv(PASSWORD_VAR, sink.password)
        async with open_store("memory://") as store:
            settings_ = mail_settings(tmp_path, sink, max_attempts=2, timeout=1.0)
            sender = build_sender(settings_, store)
            await put(store, email("u1", name="Ada", email="ada@example.com"))
            await run_until(sender, lambda: sender.counts.get("dead_lettered") == 1)
        assert sink.messages == [] and sink.logins == 0


def test_the_shipped_example_templates_render() -> None:
    """examples/notify/templates: the cart reminder of policies/cart.sw, with and without an
    offer and a first name."""
    from slotwise.proxy.notify.templates import Templates

    templates = Templates(Path(__file__).parents[3] / "examples" / "notify" / "templates")
    templates.check("cart-reminder")
    offer = {
        "id": "d1.discount_10",
        "type": "discount",
        "value": 10,
        "label": "10% off your order",
        "terms": "On the eligible subtotal of this order.",
    }
    full = templates.render(
        "cart-reminder", {"traits": {"first_name": "<Ada>"}, "offer": offer, "user_id": "u1"}
    )
    assert full.subject == "<Ada>, your cart is waiting: 10% off your order"
    assert "Your offer code: d1.discount_10" in full.text
    assert "Hello &lt;Ada&gt;," in full.html and "<strong>10% off your order</strong>" in full.html
    bare = templates.render("cart-reminder", {"traits": {}, "offer": None, "user_id": "u1"})
    assert bare.subject == "Your cart is waiting" and "offer code" not in bare.text
