"""The one writer: joined examples in, versioned models out.

Per campaign the learner keeps a training workspace (started from the CURRENT model, so a
restart loses at most what was learned since the last publish) and the same prepared action
examples the proxy uses. Each joined, non-holdout decision teaches every slot that had a real
choice: the shared example from the logged signals, the slot's candidates as actions, and the
chosen one labelled ``0:cost:probability`` with ``cost = -reward`` (VW minimises cost; an
offer set's reward per hundred of the page's cart value: ``_offer_scale``).

The chosen action gets a fresh labelled example: VW's label setter appends costs, so a
prepared example cannot be relabelled. The other candidates are passed as empty examples, not
as their variants: VW's update (``cb_adf``'s MTR) changes only the chosen action's weights,
and what it reads of the others is their number (an importance weight of events over actions)
and where the chosen one stands among them (SquareCB), so the model learned is the same, bit
for bit (tests/proxy/learn/test_learner.py checks it), while the prediction VW makes inside
``learn`` costs a fraction: an empty action crosses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pylibvw
from vowpalwabbit import Workspace

from slotwise.proxy.bandit.arm_means import MeansTable, cell_of
from slotwise.proxy.bandit.campaign import BanditCampaign
from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.exploration import model_family
from slotwise.proxy.bandit.features import FeatureMap, SharedFeatures
from slotwise.proxy.bandit.store import ModelInfo, ModelStore
from slotwise.proxy.bandit.training import TrainingRecorder
from slotwise.proxy.bandit.workspace import action_features, new_workspace, shared_example
from slotwise.proxy.decision_log import DecisionRecord, signals_of
from slotwise.proxy.learn.log import JoinedRecord
from slotwise.proxy.offer_set import PREFIX as OFFERS_PREFIX

_CB_LABEL = 4  # vowpalwabbit.LabelType.CONTEXTUAL_BANDIT


@dataclass(slots=True)
class LearnStats:
    examples: int = 0
    slot_updates: int = 0
    skipped_holdout: int = 0
    skipped_unknown: int = 0


@dataclass(slots=True)
class _Training:
    campaign: BanditCampaign
    workspace: Workspace
    # stand-ins for the candidates not chosen (set up once, never labelled: learning leaves
    # them as they were)
    others: tuple[Any, ...]
    # per slot, in campaign order: (name, variant name -> position, the chosen-variant features)
    slots: tuple[tuple[str, dict[str, int], tuple[SharedFeatures, ...]], ...]
    parent: int | None  # the version trained on, None from scratch
    # the version CURRENT named at the start (a corrupt one included): publishing over any
    # other would undo a rollback made meanwhile
    seen: int | None = None
    examples: int = 0
    unpublished: int = 0
    # the decisions this lineage learned from, published in each version's metadata
    trained: TrainingRecorder = field(default_factory=TrainingRecorder)
    # an offer set's exact mean reward per (context cell, arm), published beside the VW model
    # (slotwise.proxy.bandit.arm_means); None for a campaign
    means: MeansTable | None = None


def _offer_scale(decision: DecisionRecord) -> float:
    """What an offer set's reward is divided by: the page's cart value in hundreds.

    An order's revenue grows with the cart the offer was made on, so revenue rewards of one
    offer set vary with the cart as much as with the offer. The cart is known when the offer is
    chosen, so dividing by it changes no decision's best arm (a positive factor of the
    context), and it takes that variance out of what the model has to learn (in the offers
    simulator, +1.2 and +1.5 points of revenue minus discount per visitor on seeds 1 and 2).
    Campaigns, and offers without a cart on the page, learn from the reward as it is."""
    if not decision.campaign.startswith(OFFERS_PREFIX):
        return 1.0
    cart = decision.signals.get("page.cart_value")
    if isinstance(cart, int | float) and not isinstance(cart, bool) and cart > 0:
        return float(cart) / 100.0
    return 1.0


def _empty_action(workspace: Workspace) -> Any:
    example = pylibvw.example(workspace, _CB_LABEL)
    workspace.setup_example(example)
    return example


class Learner:
    """Trains one workspace per campaign from joined decisions and publishes versions."""

    def __init__(
        self,
        campaigns: Iterable[BanditCampaign],
        store: ModelStore | None = None,
        features: FeatureMap | None = None,
    ) -> None:
        self.store = store
        self.features = features or FeatureMap()
        self.stats = LearnStats()
        self.warnings: list[str] = []
        self._training: dict[str, _Training] = {}
        for campaign in campaigns:
            self._training[campaign.name] = self._start(campaign)

    @property
    def campaigns(self) -> Mapping[str, BanditCampaign]:
        return {name: t.campaign for name, t in self._training.items()}

    def workspace(self, campaign: str) -> Workspace:
        return self._training[campaign].workspace

    def _start(self, campaign: BanditCampaign) -> _Training:
        workspace, parent, examples, seen = None, None, 0, None
        trained = TrainingRecorder()
        offers = campaign.name.startswith(OFFERS_PREFIX)
        means = MeansTable() if offers else None
        if self.store is not None:
            seen = self.store.current_version(campaign.name)
            try:  # a CURRENT naming no version, damaged metadata, a corrupt or foreign model
                self.store.checked_current(campaign.name)
                info = self.store.current(campaign.name)
                if info is not None:
                    workspace = self.store.open_workspace(info, campaign.explore, training=True)
                    parent, examples = info.version, info.examples
                    trained = TrainingRecorder(info.training, complete=info.training is not None)
                    means = MeansTable(info.arm_means) if offers else None
            except BanditError as error:
                self.warnings.append(f"{error}; training {campaign.name} from scratch")
        if workspace is None:
            workspace = new_workspace(campaign.explore, training=True)
        slots = tuple(
            (
                slot.name,
                {v.name: i for i, v in enumerate(slot.variants)},
                tuple(action_features(slot, i) for i in range(len(slot.variants))),
            )
            for slot in campaign.slots
        )
        most = max(len(slot.variants) for slot in campaign.slots)
        others = tuple(_empty_action(workspace) for _ in range(most - 1))
        return _Training(
            campaign, workspace, others, slots, parent, seen, examples, 0, trained, means
        )

    def learn(self, joined: JoinedRecord) -> bool:
        """Learn from one joined decision; False if it teaches nothing (holdout, unknown)."""
        decision = joined.decision
        training = self._training.get(decision.campaign)
        if training is None:
            self.stats.skipped_unknown += 1
            return False
        if decision.holdout:
            self.stats.skipped_holdout += 1
            return False
        if decision.fail_open is not None:
            self.stats.skipped_unknown += 1  # the response went out unchanged: never shown
            return False
        workspace = training.workspace
        logged_slots = {s.slot: s for s in decision.slots}
        shared = None
        signals = None
        cost = -joined.reward / _offer_scale(decision)
        updates = 0
        for name, known, chosen_features in training.slots:
            logged = logged_slots.get(name)
            if logged is None or logged.variant is None or len(logged.candidates) < 2:
                continue
            chosen_at = known.get(logged.variant)
            if chosen_at is None or not known.keys() >= set(logged.candidates):
                continue  # the policy changed since: this slot's choice set no longer exists
            if signals is None:
                signals = signals_of(decision)
            if shared is None:
                shared = shared_example(
                    workspace, self.features.shared(signals, personal=decision.personal)
                )
            chosen = pylibvw.example(workspace, _CB_LABEL)
            chosen.push_feature_dict(workspace, chosen_features[chosen_at])
            chosen.set_label_string(workspace, f"0:{cost!r}:{logged.probability!r}", _CB_LABEL)
            workspace.setup_example(chosen)
            # in the chosen one's place among the candidates: SquareCB's update reads it
            at = logged.candidates.index(logged.variant)
            others = training.others
            last = len(logged.candidates) - 1
            pylibvw.vw.learn_multi(workspace, [shared, *others[:at], chosen, *others[at:last]])
            if training.means is not None:
                training.means.add(cell_of(signals, self.features), logged.variant, -cost)
            updates += 1
        if updates == 0:
            self.stats.skipped_unknown += 1
            return False
        self.stats.examples += 1
        self.stats.slot_updates += updates
        training.examples += 1
        training.unpublished += 1
        training.trained.add(decision.id, decision.ts)
        return True

    def learn_many(self, records: Iterable[JoinedRecord]) -> int:
        """``learn`` for each record in turn; how many taught something."""
        learn = self.learn
        return sum(1 for joined in records if learn(joined))

    def publish(self) -> list[ModelInfo]:
        """Save every campaign with new examples as a new CURRENT version."""
        if self.store is None:
            return []
        published: list[ModelInfo] = []
        for name, training in list(self._training.items()):
            if training.unpublished == 0:
                continue
            current = self.store.current_version(name)
            if current != training.seen:
                self.warnings.append(
                    f"{name}: CURRENT moved to v{current} (rollback?); dropping "
                    f"{training.unpublished} unpublished examples and continuing from it"
                )
                self._training[name] = self._start(training.campaign)
                continue
            info = self.store.publish(
                name,
                training.workspace,
                family=model_family(training.campaign.explore),
                examples=training.examples,
                parent=training.parent,
                explore_parameter=training.campaign.explore.parameter,
                training=training.trained.data(),
                arm_means=training.means.data() if training.means is not None else None,
            )
            training.parent = training.seen = info.version
            training.unpublished = 0
            published.append(info)
        return published
