"""Vowpal Wabbit workspaces and prepared examples for one campaign.

Every slot decision is one ``--cb_explore_adf`` call over the slot's eligible variants: a shared
example (the request's signals) followed by one action example per variant. The action examples
depend only on the campaign, so ``PreparedActions`` builds and sets them up once per workspace
and compiled campaign; a request only builds its shared example (dict features, hashed in C++,
no text parsing). ``docs/learning.md`` explains why per-slot ``cb_explore_adf`` and not
``ccb_explore_adf``.

Interactions (feature layout 3): every shared namespace with the variant (``uv``, ``dv``, ...),
the user namespace and each contextual one with the variant (``udv``: "young and mobile
prefers B"), so segments that are conjunctions of a personal and a contextual signal are
learnable without naming them, and every shared namespace with the slot (``us``, ``ds``, ...):
what a context earns in a slot whatever the variant, which the variant crosses then need not
carry. Layout 1 crossed every pair of shared namespaces with the variant and the slot's name
with all of them; layout 3 keeps the model's quality on the simulator at about two thirds of
the work per action (docs/learning.md, "Tuning", eighth round).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pylibvw
from vowpalwabbit import Example, LabelType, Workspace

from slotwise.dsl.compiled import Slot
from slotwise.proxy.bandit.campaign import BanditCampaign
from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.exploration import family_args, tuning_args
from slotwise.proxy.bandit.features import (
    CONTEXTUAL_NAMESPACES,
    SHARED_NAMESPACES,
    SLOT,
    USER,
    VARIANT,
    SharedFeatures,
)
from slotwise.types import Explore

BIT_PRECISION = 18
# The feature layout: which features and interactions a model's weights stand for. A model
# saved under another layout is refused (``model_layout_mismatch``, ModelStore.open_workspace):
# its weights would be read as other features. Raise it whenever ``features.py``,
# ``action_features`` or ``interaction_args`` change what a model sees. Layout 1 is what
# slotwise built until issue 22 (metadata without ``layout`` is layout 1); layout 2 was measured
# on a branch and never released; layout 3 is described in this module's docstring.
LAYOUT = 3
# Learning settings, tuned on the simulator (docs/learning.md, "Tuning"). VW's default rate
# (0.5) suits dense, low-noise labels; with click rewards (rare, Bernoulli) and importance
# weights of 1/p it chases the last few outcomes. Clipping p at 0.3 bounds those weights (at
# most 3.3) so one lucky click on an explored variant cannot flip the greedy choice. A slower
# decay of the rate (power_t 0.2 instead of 0.5) keeps late evidence from being ignored: a
# segment whose winner only shows after other slots settled can still overturn an early guess.
LEARNING_RATE = 0.1
CLIP_PROBABILITY = 0.3
POWER_T = 0.2
_LEARNING = [
    "--learning_rate",
    str(LEARNING_RATE),
    "--clip_p",
    str(CLIP_PROBABILITY),
    "--power_t",
    str(POWER_T),
]
_CB_LABEL = LabelType.CONTEXTUAL_BANDIT.value
# The learner's workspaces only: VW's ``learn`` on a multi-line example first predicts over
# every action (to return a prediction nobody reads here), then updates the chosen one. The
# update does not read that prediction, so ``--no_predict`` skips it and the model learned is
# the same, bit for bit (tests/proxy/learn/test_learner.py compares it with a workspace that
# predicts); about a quarter of ``learn_multi`` at 12 signals and 10 candidates on a quiet
# machine (docs/benchmarks.md, "The bandit's cost, third pass"). VW does not
# save the option in the model file: a saved model is the same bytes, and a serving workspace
# (which never learns) loads it without.
_TRAINING = ["--no_predict"]


def interaction_args() -> list[str]:
    variant, slot, user = VARIANT[0], SLOT[0], USER[0]
    pairs = [f"{name[0]}{variant}" for name in SHARED_NAMESPACES]
    triples = [f"{user}{name[0]}{variant}" for name in CONTEXTUAL_NAMESPACES]
    baselines = [f"{name[0]}{slot}" for name in SHARED_NAMESPACES]
    return [arg for crossed in pairs + triples + baselines for arg in ("--interactions", crossed)]


def new_workspace(explore: Explore, *, training: bool = False) -> Workspace:
    """A fresh, untrained workspace for a campaign with this exploration (``training``: the
    learner's, which learns and never predicts)."""
    args = ["--cb_explore_adf", "--quiet", "--bit_precision", str(BIT_PRECISION), *_LEARNING]
    args += interaction_args() + family_args(explore) + tuning_args(explore)
    if training:
        args += _TRAINING
    return Workspace(arg_list=args)


def load_workspace(path: Path, explore: Explore, *, training: bool = False) -> Workspace:
    """A workspace from a saved model file, with the campaign's current exploration tuning
    (``training``: as ``new_workspace``)."""
    try:
        args = ["--quiet", "-i", str(path), *_LEARNING, *tuning_args(explore)]
        if training:
            args += _TRAINING
        return Workspace(arg_list=args)
    except RuntimeError as exc:
        raise BanditError(
            "corrupt_model", f"{path}: Vowpal Wabbit cannot load this model ({exc})"
        ) from exc


def variant_features(slot: Slot, position: int) -> list[str]:
    """The variant namespace of one action: the variant's name and its attributes."""
    variant = slot.variants[position]
    features = [f"{slot.name}={variant.name}"]
    features += [f"{slot.name}.{key}={value}" for key, value in sorted(variant.attributes.items())]
    return features


def action_features(slot: Slot, position: int) -> SharedFeatures:
    """One action's features: its variant namespace and the slot's name."""
    return {VARIANT: variant_features(slot, position), SLOT: [f"slot={slot.name}"]}


def shared_example(workspace: Workspace, features: SharedFeatures) -> Any:
    """The per-request shared example: the only example built on the request path."""
    example = pylibvw.example(workspace, _CB_LABEL)
    example.push_feature_dict(workspace, features)
    example.set_label_string(workspace, "shared", _CB_LABEL)
    workspace.setup_example(example)
    return example


def action_example(workspace: Workspace, slot: Slot, position: int) -> Example:
    example = Example(workspace, action_features(slot, position), LabelType(_CB_LABEL))
    example.setup_example()
    return example


@dataclass(frozen=True, slots=True)
class PreparedActions:
    """Set-up action examples for every variant of every slot, bound to one workspace.

    Prediction reads them and leaves them as they were, so one set serves every request for
    as long as the workspace and the campaign live.
    """

    per_slot: tuple[tuple[Any, ...], ...]

    @classmethod
    def build(cls, workspace: Workspace, campaign: BanditCampaign) -> PreparedActions:
        return cls(
            tuple(
                tuple(action_example(workspace, slot, i) for i in range(len(slot.variants)))
                for slot in campaign.slots
            )
        )


def predict_pmf(workspace: Workspace, shared: Any, actions: Sequence[Any]) -> list[float]:
    """VW's exploration distribution over ``actions`` (index i is the i-th action)."""
    examples = [shared, *actions]
    pylibvw.vw.predict_multi(workspace, examples)
    scores: list[float] = shared.get_action_scores()
    return scores
