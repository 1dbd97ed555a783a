"""Vowpal Wabbit contextual bandits in-process: features, holdout, per-slot choice, models.

The proxy uses ``BanditRuntime`` (``runtime.py``): ``choose`` on the request path, ``install``
and ``reload`` on the control plane. ``docs/learning.md`` describes the whole loop. The bandit
speaks the project's vocabulary: slots and variants of the compiled policy
(``slotwise.dsl.compiled``), ``Goal`` and ``Explore`` (``slotwise.types``), and it answers with
a ``Choice`` (``slotwise.proxy.choice``), as the rule chooser does.
"""

from slotwise.proxy.bandit.campaign import BanditCampaign, action_slot, from_compiled
from slotwise.proxy.bandit.engine import CampaignModel, SlotRules
from slotwise.proxy.bandit.errors import BanditError
from slotwise.proxy.bandit.features import FeatureMap
from slotwise.proxy.bandit.runtime import BanditRuntime, Snapshot
from slotwise.proxy.bandit.store import ModelInfo, ModelStore

__all__ = [
    "BanditCampaign",
    "BanditError",
    "BanditRuntime",
    "CampaignModel",
    "FeatureMap",
    "ModelInfo",
    "ModelStore",
    "SlotRules",
    "Snapshot",
    "action_slot",
    "from_compiled",
]
