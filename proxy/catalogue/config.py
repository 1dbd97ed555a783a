"""``[catalogue]``: the feed the catalogue is loaded from, and how often changes are picked up."""

from __future__ import annotations

from typing import Annotated

import msgspec

from slotwise.proxy.config.sections import setting as _help


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
