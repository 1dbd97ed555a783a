"""The e-mail channel: the policy's template rendered with the user's traits and the offer,
plain text + HTML, sent over SMTP with aiosmtplib (STARTTLS or implicit TLS, optional auth).

The recipient is the trait ``notify.email_trait``; a user without one is a permanent failure
(a dead letter with that reason), as are a template that fails to render and a recipient the
server refuses with a 5xx. A refused connection, a dropped session, a timeout or a 4xx is
retried. The Message-ID is derived from the idempotency key, so a redelivery after a crash
carries the same id and a mailbox or relay that deduplicates on it shows one message.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib

from slotwise.proxy.notify.delivery import Outcome
from slotwise.proxy.notify.errors import NotifyError
from slotwise.proxy.notify.outbox import Notification
from slotwise.proxy.notify.templates import TemplateRenderError, Templates


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # "starttls", "tls" or "none"
    username: str
    password: str
    sender: str  # the From address
    ca_file: str = ""
    timeout: float = 10.0


def message_id(key: str, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "slotwise.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}.slotwise@{domain}>"


def _address(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text: str = value.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain or any(c in text for c in "\r\n<>, "):
        return None
    return text


class EmailChannel:
    def __init__(self, smtp: SmtpSettings, templates: Templates, address_trait: str) -> None:
        self.smtp = smtp
        self.templates = templates
        self.address_trait = address_trait
        self._tls: ssl.SSLContext | None = None
        if smtp.security != "none":
            self._tls = ssl.create_default_context(cafile=smtp.ca_file or None)

    def compose(self, notification: Notification) -> EmailMessage | Outcome:
        """The message, or the permanent failure that keeps it from being written."""
        recipient = _address(notification.traits.get(self.address_trait))
        if recipient is None:
            return Outcome.never(f"no_address: the user has no valid '{self.address_trait}' trait")
        context = {
            "user_id": notification.subject,
            "trigger": notification.trigger,
            "traits": notification.traits,
            "offer": notification.offer,
        }
        try:
            rendered = self.templates.render(notification.template, context)
        except (NotifyError, TemplateRenderError) as exc:
            return Outcome.never(f"template_error: {getattr(exc, 'message', exc)}")
        message = EmailMessage()
        message["From"] = self.smtp.sender
        message["To"] = recipient
        message["Subject"] = rendered.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = message_id(notification.key, self.smtp.sender)
        message["X-Slotwise-Notification"] = notification.key
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        return message

    async def deliver(self, notification: Notification) -> Outcome:
        composed = self.compose(notification)
        if isinstance(composed, Outcome):
            return composed
        smtp = self.smtp
        try:
            await aiosmtplib.send(
                composed,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username or None,
                password=smtp.password or None,
                use_tls=smtp.security == "tls",
                start_tls=True if smtp.security == "starttls" else False,
                tls_context=self._tls,
                timeout=smtp.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            if codes and all(code >= 500 for code in codes):
                return Outcome.never(f"recipient_refused: {detail}")
            return Outcome.retry(f"recipient_deferred: {detail}")
        except aiosmtplib.SMTPDataError as exc:
            if exc.code >= 500:
                return Outcome.never(f"message_refused: {exc.code} {exc.message}")
            return Outcome.retry(f"smtp_{exc.code}: {exc.message}")
        except aiosmtplib.SMTPResponseException as exc:  # auth, sender, HELO: fix and replay
            return Outcome.retry(f"smtp_{exc.code}: {exc.message}")
        except (aiosmtplib.SMTPException, OSError) as exc:  # refused, dropped, timed out, TLS
            return Outcome.retry(f"connection: {type(exc).__name__}: {exc}")
        return Outcome.ok()

    async def aclose(self) -> None:
        return None
