"""slotwise: an edge proxy that personalises ad and storefront responses.

The top-level folders ``dsl/``, ``proxy/`` and ``plugins/`` install as ``slotwise.dsl``,
``slotwise.proxy`` and ``slotwise.plugins`` (the names inside this package are links to them).
"""

__version__ = "0.1.0"
