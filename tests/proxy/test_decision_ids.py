"""Every decision id the proxy issues is accepted by its own endpoints (issue 15)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from slotwise.proxy.events.schema import Rejection, convert_event
from slotwise.proxy.tracking import ClickSigner, decision_ids, new_decision_id


def _accepted(decision_id: str) -> bool:
    """As the pixel and the click redirect record it: an event naming the decision."""
    for kind in ("impression", "click", "conversion"):
        event = convert_event(
            {"type": kind, "decision_id": decision_id, "id": f"{decision_id}.{kind}"}
        )
        if isinstance(event, Rejection):
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=12, max_size=12 * 64))
def test_every_id_made_from_any_random_bytes_is_accepted(random: bytes) -> None:
    ids = decision_ids(random)
    assert len(ids) <= len(random) // 12
    for decision_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{15}", decision_id)
        assert _accepted(decision_id)


def test_ids_that_would_start_with_a_dash_or_underscore_are_dropped() -> None:
    # 0xf8 0x00 0x00 -> "-AAA", 0xfc 0x00 0x00 -> "_AAA" in URL-safe base64
    assert decision_ids(b"\xf8" + bytes(11)) == []
    assert decision_ids(b"\xfc" + bytes(11)) == []
    assert decision_ids(bytes(12)) == ["AAAAAAAAAAAAAAAA"]


def test_fifty_thousand_issued_ids_are_accepted_and_sign_valid_clicks() -> None:
    signer = ClickSigner(b"k" * 32, "https://proxy.example")
    ids = [new_decision_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    assert all(_accepted(i) for i in ids[:5_000])
    assert not [i for i in ids if i[0] in "-_"]  # about 1,560 would have, before
    target = "https://shop.example/p?x=1"
    for decision_id in ids[:1_000]:
        link = signer.redirect(decision_id, target)
        signature = re.search(r"[?&]s=([^&]+)", link)
        assert signature is not None and signer.verify(decision_id, target, signature.group(1))
