"""slotwise: an edge proxy that personalises ad and storefront responses.

The top-level folders ``dsl/``, ``proxy/`` and ``plugins/`` install as ``slotwise.dsl``,
``slotwise.proxy`` and ``slotwise.plugins`` (the names inside this package are links to them).
"""

__version__ = "0.1.0"

# Load the request path's modules from source when their compiled build is absent, skipped
# (SLOTWISE_PURE=1) or older than their source (slotwise/native.py).
from slotwise import native as _native  # noqa: E402

_native.install()
