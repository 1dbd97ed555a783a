"""What makes the HTML report one self-contained file: nothing that a browser would fetch."""

from __future__ import annotations

import re

# an attribute that loads or links something (pygal's default links its tooltip script with
# a protocol-relative "//host/..." href, so this is not only a matter of "http")
_LINKS = re.compile(r"""\b(?:href|src|srcset|xlink:href)\s*=\s*["']?([^"'\s>]*)""", re.I)


def assert_self_contained(html: str) -> None:
    lowered = html.lower()
    assert "<script" not in lowered, "a script"
    assert "<link" not in lowered and "@import" not in lowered, "an external stylesheet"
    assert "http://" not in lowered and "https://" not in lowered, "an http(s) reference"
    assert "xml-stylesheet" not in lowered, "a stylesheet processing instruction"
    for target in _LINKS.findall(html):
        assert target.startswith("#"), f"a link to {target!r}"
    for target in re.findall(r"url\(\s*['\"]?([^)'\"]*)", html):
        assert target.startswith("#"), f"a CSS url({target!r})"
