"""Models through the state store, so that proxies on other machines get them without a shared
file system (``bandit.models_in_store``).

The models directory stays the one place a model is served from (and the embedded default):
the learner, after each publish (and a rollback made on its machine), copies every campaign's
CURRENT version into the store, the version's files first and then the pointer; each proxy
checks the pointers every ``bandit.reload_interval`` seconds and writes a version it has not
got into its own models directory (the files first, checked against their sha256, then
CURRENT), where its usual reload takes it. A rollback is a pointer moving back, and reaches the
proxies the same way.

Keys: ``slotwise:models:campaigns`` (a set of names), ``slotwise:models:CAMPAIGN:current`` (the
version number), ``slotwise:models:CAMPAIGN:vN:model`` and ``...:vN:meta`` (the two files, as
written). A version's keys expire after ``VERSION_TTL`` (the pointer's version is written again
at each push, which keeps it).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Final

from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.store import CAMPAIGN_NAME, CURRENT, ModelStore, read_info
from slotwise.proxy.files import write_atomically
from slotwise.proxy.state import Store

log = logging.getLogger("slotwise.models")
PREFIX: Final = "slotwise:models"
CAMPAIGNS: Final = f"{PREFIX}:campaigns"
VERSION_TTL: Final = 30 * 86_400.0  # seconds: older versions leave the store (not the disks)


def _key(campaign: str, what: str) -> str:
    return f"{PREFIX}:{campaign}:{what}"


class ModelMirror:
    """Pushes a models directory's CURRENT versions to the store, or pulls them from it."""

    def __init__(self, store: Store, models: ModelStore) -> None:
        self.store = store
        self.models = models
        self._pushed: dict[str, int] = {}  # campaign -> version the store's pointer names

    async def push(self) -> list[str]:
        """Copy every campaign's CURRENT version to the store when it moved; the campaigns."""
        moved = []
        for campaign in self.models.campaigns():
            try:
                version = self.models.checked_current(campaign)
            except BanditError as error:
                log.error("model of %s not pushed to the store: %s", campaign, error.message)
                continue
            if version is None or self._pushed.get(campaign) == version:
                continue
            info = self.models.info(campaign, version)
            data = self.models.verify(info)
            meta = self.models.model_path(info).with_suffix(".json").read_bytes()
            ttl = VERSION_TTL
            await self.store.set(_key(campaign, f"v{version}:model"), data, ttl=ttl)
            await self.store.set(_key(campaign, f"v{version}:meta"), meta, ttl=ttl)
            await self.store.set_add(CAMPAIGNS, campaign.encode())
            await self.store.set(_key(campaign, "current"), str(version).encode())
            self._pushed[campaign] = version
            moved.append(campaign)
        return moved

    def forget(self) -> None:
        """Push every campaign again next time (a push failed half way)."""
        self._pushed.clear()

    async def pull(self) -> list[str]:
        """Write into the models directory every version the store's pointers name and the
        directory's CURRENT does not; the campaigns that changed."""
        campaigns = sorted(member.decode() for member in await self.store.set_members(CAMPAIGNS))
        pointers = await self.store.get_many([_key(c, "current") for c in campaigns])
        changed = []
        for campaign, pointer in zip(campaigns, pointers, strict=True):
            if pointer is None or not pointer.isdigit() or not CAMPAIGN_NAME.match(campaign):
                continue
            version = int(pointer)
            if self.models.current_version(campaign) == version:
                continue
            if await self._install(campaign, version):
                changed.append(campaign)
        return changed

    async def _install(self, campaign: str, version: int) -> bool:
        data, meta = await self.store.get_many(
            [_key(campaign, f"v{version}:model"), _key(campaign, f"v{version}:meta")]
        )
        if data is None or meta is None:
            log.error("the store names %s v%d but holds no files for it", campaign, version)
            return False
        try:
            recorded = json.loads(meta)["sha256"]
        except (ValueError, KeyError, TypeError):
            recorded = None
        if recorded != hashlib.sha256(data).hexdigest():
            log.error(
                "model %s v%d from the store fails its checksum: not taken", campaign, version
            )
            return False
        folder = self.models.root / campaign
        folder.mkdir(parents=True, exist_ok=True)
        model = folder / f"v{version:06d}.vw"
        write_atomically(model, data)
        write_atomically(model.with_suffix(".json"), meta)
        read_info(model.with_suffix(".json"), campaign, version)  # refuses damaged metadata
        write_atomically(folder / CURRENT, f"{version}\n".encode())
        log.info("model %s v%d installed from the store", campaign, version)
        return True
