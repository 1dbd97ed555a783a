"""The click-signing key: shared through the store when not configured, and rotated with the
old key still accepted (tracking.previous_secrets)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.click_key import STORE_KEY, shared_click_key
from slotwise.proxy.config import Settings
from slotwise.proxy.state import open_store
from slotwise.proxy.tracking import ClickSigner
from tests.proxy.support import running

OLD = "old-click-key-0123456789"
NEW = "new-click-key-0123456789"
TARGET = "https://shop.example/spring"


def _link(key: str, decision_id: str = "d1") -> str:
    signature = ClickSigner(key.encode()).signature(decision_id, TARGET)
    return f"/_sw/click?d={decision_id}&u={quote(TARGET, safe='')}&s={signature}"


async def test_processes_on_one_store_share_one_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    async with open_store(url) as first, open_store(url) as second:
        key = await shared_click_key(first)
        assert len(key) >= 32 and await shared_click_key(second) == key
        assert await first.get(STORE_KEY) == key


async def test_an_unset_secret_is_the_stores_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    async with open_store(url) as store:
        key = (await shared_click_key(store)).decode()
    settings = Settings.of(store_url=url, upstream_url="http://127.0.0.1:9", proxy_policies="")
    app = ProxyApp(settings, load_plugins=False)
    async with running(app) as client:
        assert (await client.get(_link(key))).status_code == 302
        assert (await client.get(_link(OLD))).status_code == 400


async def test_a_rotated_key_still_verifies_its_links() -> None:
    settings = Settings.of(
        tracking_secret=NEW,
        tracking_previous_secrets=(OLD,),
        upstream_url="http://127.0.0.1:9",
        proxy_policies="",
    )
    app = ProxyApp(settings, load_plugins=False)
    async with running(app) as client:
        for key in (NEW, OLD):
            response = await client.get(_link(key))
            assert response.status_code == 302 and response.headers["location"] == TARGET
        assert (await client.get(_link("another-key-0123456789"))).status_code == 400
    # new links are signed with the new key only
    assert app.runtime is None
    signer = ClickSigner(NEW.encode(), "", [OLD.encode()])
    assert "s=" + ClickSigner(NEW.encode()).signature("d2", TARGET) in signer.redirect("d2", TARGET)
    assert signer.trackers("d2", "https://other.example").signer.verify(
        "d2", TARGET, ClickSigner(OLD.encode()).signature("d2", TARGET)
    )
