"""The product catalogue: items from a feed file, changed live through the admin API.

- :mod:`.item`: an item, feed parsing (JSON Lines, CSV), changes (put, patch, remove);
- :mod:`.snapshot`: the immutable snapshot the request path reads;
- :mod:`.live`: one worker's catalogue (feed reloads, the store's change log);
- :mod:`.admin`: ``/_sw/admin/catalogue/items`` (behind the admin token);
- :mod:`.config`: ``[catalogue]``.
"""

from slotwise.proxy.catalogue.item import CatalogueError, Item, ItemChange, ItemPatch, parse_feed
from slotwise.proxy.catalogue.live import LiveCatalogue, change
from slotwise.proxy.catalogue.snapshot import CatalogueSnapshot

__all__ = [
    "CatalogueError",
    "CatalogueSnapshot",
    "Item",
    "ItemChange",
    "ItemPatch",
    "LiveCatalogue",
    "change",
    "parse_feed",
]
