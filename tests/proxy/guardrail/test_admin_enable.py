"""Re-enabling a reverted campaign through the admin API: POST /_sw/admin/guardrails/NAME/enable
(admin token, loopback, like every admin endpoint); the dashboard needs the token too."""

from __future__ import annotations

from pathlib import Path

import httpx

from slotwise.proxy.app import ProxyApp
from slotwise.proxy.config import Settings
from slotwise.proxy.guardrail import state
from tests.proxy.support import running, upstream_server

TOKEN = "admin-token-0123456789"
GOOD = {"Authorization": f"Bearer {TOKEN}"}


async def test_admin_enable(tmp_path: Path) -> None:
    async with upstream_server({}) as server:
        app = ProxyApp(
            Settings.of(
                upstream_url=server.url,
                proxy_policies="",
                store_url=f"sqlite:///{tmp_path}/state.db",
                events_admin_token=TOKEN,
            ),
            load_plugins=False,
        )
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with (
            running(app),
            httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as client,
        ):
            assert app.runtime is not None
            store = app.runtime.store
            record = state.RevertRecord(
                campaign="spring", at=1.0, difference=-0.1, low=-0.2, high=-0.01
            )
            await state.revert(store, record)
            path = "/_sw/admin/guardrails/spring/enable"
            assert (await client.post(path)).status_code == 401
            done = await client.post(path, headers=GOOD)
            assert done.status_code == 200 and done.json() == {
                "enabled": True,
                "campaign": "spring",
            }
            assert await state.reverted(store) == frozenset()
            again = await client.post(path, headers=GOOD)
            assert again.status_code == 404 and again.json()["error"]["code"] == "not_reverted"
            assert (await client.get("/_sw/dashboard")).status_code == 401
            assert (await client.get("/_sw/dashboard", headers=GOOD)).status_code == 200
