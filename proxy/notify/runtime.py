"""Building the sender from the settings, and the start check of what the policies name.

Used by ``slotwise serve`` (the check before any worker starts; the sender in each worker's
lifespan, where the lease lets one work) and by ``slotwise notify serve``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from slotwise.proxy.notify.audience_push import AudiencePusher, audience_pushes
from slotwise.proxy.notify.delivery import Channel
from slotwise.proxy.notify.endpoints import webhook_endpoints
from slotwise.proxy.notify.errors import NotifyError
from slotwise.proxy.notify.mail import EmailChannel, SmtpSettings
from slotwise.proxy.notify.outbox import Notification
from slotwise.proxy.notify.sender import RetryPolicy, Sender, StillDue, always_due
from slotwise.proxy.notify.templates import Templates
from slotwise.proxy.notify.webhook import WebhookChannel
from slotwise.proxy.state.base import Store

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet
    from slotwise.proxy.config import Settings


def build_channels(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> dict[str, Channel]:
    """The configured channels: ``webhook`` always (its endpoints may be none), ``email`` when
    ``notify.smtp_host`` is set. NotifyError names what is wrong."""
    environ = os.environ if environ is None else environ
    n = settings.notify
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel(webhook_endpoints(settings.webhooks, environ), n.timeout)
    }
    if n.smtp_host:
        channels["email"] = EmailChannel(
            _smtp(settings, environ), _templates(settings), n.email_trait
        )
    return channels


def trigger_check(store: Store) -> StillDue:
    """The cancellation hook production runs: a notification is sent only while its trigger's
    episode still stands (slotwise.proxy.triggers.still_due: not cancelled by an ``unless``
    event, not replaced by a newer episode, its window not over, its user not erased)."""
    from slotwise.proxy.triggers import still_due

    async def check(notification: Notification) -> bool:
        return await still_due(store, notification)

    return check


def build_sender(
    settings: Settings,
    store: Store,
    *,
    still_due: StillDue = always_due,
    environ: Mapping[str, str] | None = None,
    owner: str | None = None,
    policy: Callable[[], CompiledPolicySet | None] | None = None,
) -> Sender:
    """The sender; with ``policy`` (the serving policies), the ``[audience_pushes.NAME]`` too."""
    n = settings.notify
    channels = build_channels(settings, environ)
    pusher = None
    if settings.audience_pushes and policy is not None:
        webhook = channels["webhook"]
        assert isinstance(webhook, WebhookChannel)
        pushes = audience_pushes(settings.audience_pushes, webhook.endpoints)
        pusher = AudiencePusher(store, pushes, webhook, policy, retry_base=n.retry_base)
    return Sender(
        store,
        channels,
        pusher=pusher,
        retry=RetryPolicy(n.max_attempts, n.retry_base, n.retry_max),
        still_due=still_due,
        lease_seconds=n.lease_seconds,
        poll_interval=n.poll_interval,
        concurrency=n.concurrency,
        retention=n.retention_days * 86_400.0,
        grace=n.timeout + 1.0,
        owner=owner,
    )


def check(
    settings: Settings,
    policy_set: CompiledPolicySet | None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Every endpoint and template the policies name exists and works; NotifyError when not."""
    environ = os.environ if environ is None else environ
    endpoints = webhook_endpoints(settings.webhooks, environ)  # every table, named or not
    audience_pushes(settings.audience_pushes, endpoints, policy_set)
    named = list(_named(policy_set))
    for trigger, channel, name in named:
        where = f"trigger {trigger}: notify {channel} {name!r}"
        if channel == "webhook" and name not in endpoints:
            known = ", ".join(sorted(endpoints)) or "none"
            raise NotifyError(
                f"no [webhooks.{name}] table (configured: {known})",
                code="unknown_endpoint",
                where=where,
                hint=f"add [webhooks.{name}] with url and secrets_env to slotwise.toml",
            )
    emails = [name for _, channel, name in named if channel == "email"]
    if not emails:
        return
    n = settings.notify
    if not n.smtp_host or not n.smtp_from:
        raise NotifyError(
            f"the policies send e-mail ({', '.join(sorted(set(emails)))}) but "
            f"notify.{'smtp_host' if not n.smtp_host else 'smtp_from'} is not set",
            code="no_smtp",
        )
    _smtp(settings, environ)
    templates = _templates(settings)
    for trigger, channel, name in named:
        if channel == "email":
            try:
                templates.check(name)
            except NotifyError as exc:
                exc.where = exc.where or f"trigger {trigger}: notify email {name!r}"
                raise


def _named(policy_set: CompiledPolicySet | None) -> Iterable[tuple[str, str, str]]:
    for trigger in policy_set.triggers if policy_set is not None else ():
        if trigger.notify is not None:
            yield trigger.name, trigger.notify.channel, trigger.notify.template


def _smtp(settings: Settings, environ: Mapping[str, str]) -> SmtpSettings:
    n = settings.notify
    password = ""
    if n.smtp_password_env:
        password = environ.get(n.smtp_password_env, "")
        if not password:
            raise NotifyError(
                f"environment variable {n.smtp_password_env} is not set",
                code="missing_secret",
                where="notify.smtp_password_env",
                hint="set it to the SMTP password in the proxy's environment",
            )
    return SmtpSettings(
        host=n.smtp_host,
        port=n.smtp_port,
        security=n.smtp_security,
        username=n.smtp_username,
        password=password,
        sender=n.smtp_from,
        ca_file=n.smtp_ca_file,
        timeout=n.timeout,
    )


def _templates(settings: Settings) -> Templates:
    directory = settings.notify.templates_dir
    if not directory or not Path(directory).is_dir():
        raise NotifyError(
            f"notify.templates_dir {directory!r} is not a directory",
            code="unknown_template",
            where="notify.templates_dir",
            hint="set it to the directory holding the NAME.subject.txt, NAME.txt, NAME.html files",
        )
    return Templates(Path(directory))
