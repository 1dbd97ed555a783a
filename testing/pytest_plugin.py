"""The pytest plugin slotwise ships for plugin authors (registered as ``pytest11``).

Fixtures:

- ``register_provider``: ``register_provider(MyProvider)`` makes a provider class loadable
  (``load_schema()``, ``load_providers()``, the proxy app) for one test only.
- ``signal_request``: a factory of :class:`~slotwise.plugins.request.RequestInfo`
  (:func:`slotwise.testing.provider.make_request`).
- ``slotwise_providers``: :func:`slotwise.testing.provider.provider_set`, an async context
  manager that loads, configures and starts the given providers.
- ``slotwise_proxy``: :func:`slotwise.testing.proxy.proxy_client`, an async context
  manager running the real proxy app over ASGI in front of a fake upstream on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from slotwise.plugins import registry
from slotwise.plugins.provider import Provider
from slotwise.testing.provider import make_request, provider_set
from slotwise.testing.proxy import proxy_client


@pytest.fixture
def register_provider() -> Iterator[Callable[[type[Provider[Any]]], type[Provider[Any]]]]:
    """Register provider classes for this test; they are unregistered afterwards."""
    undo: list[Callable[[], None]] = []

    def register(cls: type[Provider[Any]]) -> type[Provider[Any]]:
        undo.append(registry.register(cls))
        return cls

    yield register
    for step in reversed(undo):
        step()


@pytest.fixture
def signal_request() -> Callable[..., Any]:
    """Build a ``RequestInfo``: ``signal_request("/c/shoes", headers={...}, user_id="u1")``."""
    return make_request


@pytest.fixture
def slotwise_providers() -> Callable[..., Any]:
    """``async with slotwise_providers(MyProvider, config={...}) as providers: ...``."""
    return provider_set


@pytest.fixture
def slotwise_proxy() -> Callable[..., Any]:
    """``async with slotwise_proxy({"/ad.json": Canned.json({...})}, policies={...}) as p:``."""
    return proxy_client
