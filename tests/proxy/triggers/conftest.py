"""The store fixture of the state contract suite: every trigger test runs on every backend."""

from tests.proxy.state.conftest import store

__all__ = ["store"]
