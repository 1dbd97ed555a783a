"""Webhook endpoints by name, from the ``[webhooks.NAME]`` tables: a URL, the signing secrets
(read from the environment variables the table names, newest first) and a timeout."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slotwise.proxy.notify.errors import NotifyError
from slotwise.proxy.notify.signing import secret_key

_KEYS = frozenset({"url", "secrets_env", "timeout"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    url: str
    keys: tuple[bytes, ...]  # HMAC keys of the secrets, in the order they sign
    timeout: float | None = None  # None: notify.timeout


def webhook_endpoints(
    tables: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str]
) -> dict[str, Endpoint]:
    """Every ``[webhooks.NAME]`` table as an Endpoint; NotifyError naming the first problem."""
    return {name: _endpoint(name, table, environ) for name, table in tables.items()}


def _endpoint(name: str, table: Mapping[str, Any], environ: Mapping[str, str]) -> Endpoint:
    where = f"[webhooks.{name}]"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise NotifyError(
            f"unknown key {unknown[0]!r} (the keys are url, secrets_env, timeout)", where=where
        )
    url = table.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise NotifyError("url must be an http:// or https:// URL", where=where)
    variables = table.get("secrets_env")
    if isinstance(variables, str):
        variables = [variables]
    if (
        not isinstance(variables, list)
        or not variables
        or not all(isinstance(v, str) and v for v in variables)
    ):
        raise NotifyError(
            "secrets_env must list the environment variables holding the signing secrets "
            '(newest first), e.g. secrets_env = ["CRM_WEBHOOK_SECRET"]',
            where=where,
        )
    keys = []
    for variable in variables:
        secret = environ.get(variable)
        if not secret:
            raise NotifyError(
                f"environment variable {variable} is not set",
                code="missing_secret",
                where=where,
                hint="set it to the endpoint's whsec_... secret in the proxy's environment",
            )
        keys.append(secret_key(secret, where=f"{where} ({variable})"))
    timeout = table.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise NotifyError("timeout must be a positive number of seconds", where=where)
    return Endpoint(name, url, tuple(keys), float(timeout) if timeout is not None else None)
