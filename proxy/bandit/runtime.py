"""The bandit as the proxy sees it: the chooser over an immutable, swappable snapshot.

``BanditRuntime`` is created once in the app lifespan. The request path calls ``choose``, which
reads ``self._snapshot`` once (one reference, no lock) and asks that snapshot's
``CampaignModel``. The control plane builds a complete new snapshot beside the old one and swaps
the reference:

- ``install(campaigns)`` when a new compiled policy set arrives;
- ``reload()`` when the model store's CURRENT moved (the learner published, or an operator
  rolled back). A model that fails its checksum or VW's loader is rejected: the campaign keeps
  the model it had, and the problem is reported in ``errors``.

A campaign without any saved model serves from a fresh workspace ("v0"): uniform over the
eligible variants until the first model arrives.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from slotwise.proxy.bandit.arm_means import ArmMeans, MeansData, uses_means
from slotwise.proxy.bandit.campaign import BanditCampaign, from_compiled
from slotwise.proxy.bandit.engine import REMEMBERED, CampaignModel, SlotRules
from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.exploration import model_family
from slotwise.proxy.bandit.features import FeatureMap
from slotwise.proxy.bandit.store import ModelStore
from slotwise.proxy.bandit.workspace import new_workspace
from slotwise.proxy.choice import Choice
from slotwise.types import Signals

UNTRAINED = "v0"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything ``choose`` reads: campaign name -> model, and the loaded versions."""

    models: Mapping[str, CampaignModel] = field(default_factory=dict)

    def versions(self) -> dict[str, str]:
        return {name: model.version for name, model in self.models.items()}


class BanditRuntime:
    """Chooses variants for the proxy; reloads models and policies off the request path."""

    def __init__(
        self,
        store: ModelStore | None = None,
        features: FeatureMap | None = None,
        rng: random.Random | None = None,
        remember: int = REMEMBERED,
    ) -> None:
        self.store = store
        self.remember = remember  # distributions remembered per model (bandit.remembered_contexts)
        self.features = features or FeatureMap()
        self._rng = rng or random.Random()
        self._snapshot = Snapshot()
        self.errors: list[BanditError] = []

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- request path ----------------------------------------------------------------------

    def choose(
        self,
        campaign: str,
        rules: Mapping[str, SlotRules],
        signals: Signals,
        user_key: str | None,
    ) -> Choice | None:
        """Holdout and per-slot choice for one request; None if the campaign is unknown."""
        model = self._snapshot.models.get(campaign)
        if model is None:
            return None
        return model.decide(rules, signals, user_key, self.features, self._rng)

    # -- control plane ---------------------------------------------------------------------

    def install(self, campaigns: Iterable[BanditCampaign]) -> None:
        """Serve these campaigns (a new policy set): keep each one's model, rebuild actions."""
        old = self._snapshot.models
        models: dict[str, CampaignModel] = {}
        for campaign in campaigns:
            previous = old.get(campaign.name)
            if previous is not None and previous.campaign == campaign:
                models[campaign.name] = previous
                continue
            models[campaign.name] = self._load(campaign, previous)
        self._snapshot = Snapshot(MappingProxyType(models))

    def install_policy_set(self, policy_set: Any) -> None:
        """``install`` for a ``slotwise.dsl.compiled.CompiledPolicySet``: its campaigns and
        its offer sets (``offers.NAME``, slotwise.proxy.offer_set)."""
        from slotwise.proxy.offer_set import bandit_offers

        self.install(
            [
                *(from_compiled(campaign) for campaign in policy_set.campaigns),
                *(bandit_offers(offers) for offers in getattr(policy_set, "offers", ())),
            ]
        )

    def reload(self) -> list[str]:
        """Load models whose CURRENT version changed; returns the campaigns that changed."""
        if self.store is None:
            return []
        changed: list[str] = []
        models = dict(self._snapshot.models)
        for name, model in models.items():
            current = self.store.current(name)
            if current is None or current.label == model.version:
                continue
            updated = self._load(model.campaign, model)
            if updated is not model:
                models[name] = updated
                changed.append(name)
        if changed:
            self._snapshot = Snapshot(MappingProxyType(models))
        return changed

    def _load(self, campaign: BanditCampaign, previous: CampaignModel | None) -> CampaignModel:
        """The campaign bound to its CURRENT model; on any fault, what it had (or fresh)."""
        try:
            info = self.store.current(campaign.name) if self.store is not None else None
            if info is not None:
                workspace = self.store.open_workspace(info, campaign.explore)  # type: ignore[union-attr]
                means = None
                if info.arm_means is not None and uses_means(campaign.explore):
                    means = ArmMeans.build(info.arm_means)
                return CampaignModel.build(
                    campaign, workspace, info.label, info.examples, means, self.remember
                )
        except BanditError as error:
            self.errors.append(error)
        if previous is not None and model_family(previous.campaign.explore) == model_family(
            campaign.explore
        ):
            if previous.campaign == campaign:
                return previous
            means = previous.means if uses_means(campaign.explore) else None
            return CampaignModel.build(
                campaign,
                previous.workspace,
                previous.version,
                previous.examples,
                means,
                self.remember,
            )
        return CampaignModel.build(
            campaign,
            new_workspace(campaign.explore),
            UNTRAINED,
            means=_untrained_means(campaign),
            remember=self.remember,
        )


def _untrained_means(campaign: BanditCampaign) -> ArmMeans | None:
    """An offer set that serves from means and has learned nothing: empty means (every arm
    0, all tied, so every arm alike, what an untrained VW model gives too, without VW's
    prediction); a campaign: None (VW)."""
    from slotwise.proxy.offer_set import PREFIX

    if campaign.name.startswith(PREFIX) and uses_means(campaign.explore):
        return ArmMeans.build(MeansData())
    return None
