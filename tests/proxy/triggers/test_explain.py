"""`slotwise explain --user ID`: every trigger's state for the user, from the store, and why it
does or does not fire; usage errors name what is missing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.events import EventCollector, EventsConfig
from slotwise.proxy.events.schema import Event, convert_event
from slotwise.proxy.state import open_store
from slotwise.proxy.triggers import TriggerEngine
from slotwise.proxy.triggers.explain import explain_user, render_text
from tests.proxy.personalisers.support import compile_policy

TEXT = """
campaign reminder { slot title at "$.t" { variant back "Back" } }
trigger cart_abandon {
  on event add_to_cart
  unless event purchase within 2h
  wait 1h
  window 7d
  show campaign reminder
}
trigger browse {
  on event product_view
  window 1d
}
trigger searched {
  on event search
  window 1d
  when "vip" in user.segments
}
"""
POLICY = compile_policy(TEXT)


def _event(kind: str, eid: str, at: float, **properties: object) -> Event:
    fields = {"type": kind, "id": eid, "time": at, "user_id": "u1", "properties": properties}
    event = convert_event(fields)
    assert isinstance(event, Event | object) and not hasattr(event, "reason"), event
    return event  # type: ignore[return-value]


async def test_why_each_trigger_fires_or_not() -> None:
    async with open_store("memory://") as store:
        collector = EventCollector(store, EventsConfig(history_max_len=50))
        collector.triggers = TriggerEngine(store, lambda: POLICY)
        now = time.time()
        events = [
            _event("add_to_cart", "c1", now - 600, product_id="sku-1"),
            _event("search", "s1", now - 60, query="shoes"),
        ]
        await collector.collect(events, consent="personal")
        explained = await explain_user(store, POLICY, "u1", now)
        by_name = {t["trigger"]: t for t in explained["triggers"]}
        assert by_name["cart_abandon"]["phase"] == "waiting"
        assert "armed at" in by_name["cart_abandon"]["why"]
        assert by_name["browse"] == {
            "trigger": "browse", "phase": "none", "fires": False,
            "why": "no `product_view` event in the user's history (consented events only)",
        }  # fmt: skip
        assert by_name["searched"]["phase"] == "armed" and not by_name["searched"]["fires"]
        assert "`when` does not hold" in by_name["searched"]["why"]
        later = await explain_user(store, POLICY, "u1", now + 3600)
        assert [t["fires"] for t in later["triggers"]] == [True, False, False]
        assert "shows campaign reminder" in render_text(later)
        await collector.collect([_event("purchase", "o1", now - 500, order_id="o1",
                                        items=[{"product_id": "sku-1"}], value=1.0,
                                        currency="EUR")], consent="personal")  # fmt: skip
        cancelled = await explain_user(store, POLICY, "u1", now + 3600)
        assert cancelled["triggers"][0]["phase"] == "cancelled"
        assert "cancelled: `purchase`" in cancelled["triggers"][0]["why"]
        await collector.erase("u1", actor="test")
        assert render_text(await explain_user(store, POLICY, "u1", now)) == (
            "user u1: erased (nothing of theirs is kept or used)"
        )


def test_explain_user_needs_policies_and_a_readable_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLOTWISE_CONFIG", raising=False)
    monkeypatch.setenv("SLOTWISE_PLUGINS", "builtins")
    absent = str(tmp_path / "absent")
    argv = ["explain", "--user", "u1", "--store", f"sqlite:///{tmp_path}/x.db"]
    assert main([*argv, "--policies", absent]) == 1
    assert absent in capsys.readouterr().err
    (tmp_path / "p.sw").write_text('policy "p" version 1\n' + TEXT, encoding="utf-8")
    argv = ["explain", "--user", "u1", "--policies", str(tmp_path / "p.sw")]
    assert main([*argv, "--store", f"sqlite:///{tmp_path}/missing.db"]) == 2
    assert "no state database" in capsys.readouterr().err
    assert main(["explain"]) == 2
    assert "--signals FILE.json, or --user ID" in capsys.readouterr().err
    assert main(["audiences", "export", "nope", "--policies", str(tmp_path / "p.sw")]) == 2
    err = capsys.readouterr().err
    assert "no audience named nope" in err and "cart_abandon" in err
