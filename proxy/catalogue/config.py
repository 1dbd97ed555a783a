"""``[catalogue]``: the feed the catalogue is loaded from, and how often changes are picked up."""

from __future__ import annotations

from typing import Annotated

import msgspec


def _help(text: str, *, ge: float | None = None, le: float | None = None) -> msgspec.Meta:
    """A key's help and bounds (its own helper: slotwise.proxy.config imports this module)."""
    return msgspec.Meta(description=text, ge=ge, le=le)


class CatalogueConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where the items come from (recommendations.md)."""

    feed: Annotated[
        str,
        _help(
            "catalogue feed file: JSON Lines, or CSV (`.csv`) with a header row; reloaded when "
            "it changes; empty: no catalogue (recommendations and re-ranks are not served)"
        ),
    ] = ""
    poll_interval: Annotated[
        float,
        _help(
            "seconds between checks of the feed file and of the admin API's change log (the "
            "worker that takes an admin change applies it at once, the others within this)",
            ge=0.001,
        ),
    ] = 1.0
