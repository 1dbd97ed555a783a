"""Experiment hooks for `slotwise simulate`: not part of the product, never imported by it.

Put this directory first on PYTHONPATH and Python imports this module at start-up; each
variable below swaps one setting of the learning engine for the run, so a setting can be
measured on the simulator without editing the package (docs/learning.md, "Fifth round"):

    SW_LEARN="--learning_rate 0.03 --clip_p 0.3 --power_t 0.2"   VW learning options
    SW_INTER="uv cv dv gv tv udv"       VW interactions (default: every pair and triple)
    SW_TUNING="--gamma_scale 3"         exploration options (replace the policy's tuning)
    SW_UNIFORM=1                        decisions uniform over the candidates; the greedy
                                        readout still uses the model (pair it with a
                                        scenario whose policy says `explore greedy`)
    SW_PAGE_CART=none|octave            the page's cart (page.cart_value, page.cart_count)
                                        gives the bandit no features, or only each number's
                                        octave (`slotwise simulate-offers`)
    SW_NOSLOT=1                         no `slot` namespace per action (`slot=<slot>`, the same
                                        for all of a slot's candidates)
    SW_SEGMENTS=FILE.sw                 the named segments of FILE as features: namespace
                                        `named`, one feature per segment the request's
                                        usable signals are in (add `nv` to SW_INTER; it was
                                        `segment`, `sv`, before layout 3 took `s` for `slot`)

    cd /tmp && SW_UNIFORM=1 PYTHONPATH=/path/to/repo/scripts/learning_experiments \\
        /path/to/repo/.venv/bin/slotwise simulate scenario.toml --seed 1 --format json

Run it from outside the repository, or the working tree's package is imported instead.
"""

from __future__ import annotations

import os
from typing import Any

if os.environ.get("SW_LEARN") or os.environ.get("SW_INTER"):
    import slotwise.proxy.bandit.workspace as workspace

    if os.environ.get("SW_LEARN"):
        workspace._LEARNING[:] = os.environ["SW_LEARN"].split()
    if os.environ.get("SW_INTER"):
        _pairs = os.environ["SW_INTER"].split()
        workspace.interaction_args = lambda: [a for i in _pairs for a in ("--interactions", i)]

if os.environ.get("SW_NOSLOT"):
    import slotwise.proxy.bandit.workspace as slotless
    import slotwise.proxy.learn.learner as learner

    _action_features = slotless.action_features

    def action_features(slot: Any, position: int) -> Any:
        found = dict(_action_features(slot, position))
        found.pop(slotless.SLOT, None)
        return found

    slotless.action_features = action_features
    learner.action_features = action_features  # type: ignore[attr-defined]

if os.environ.get("SW_TUNING"):
    import slotwise.proxy.bandit.workspace as tuned  # the one caller of tuning_args

    _tuning = os.environ["SW_TUNING"].split()
    tuned.tuning_args = lambda explore: list(_tuning)

if os.environ.get("SW_UNIFORM"):
    import slotwise.proxy.bandit.engine as engine

    _deciding = [False]
    _decide = engine.CampaignModel.decide
    _slot_pmf = engine.CampaignModel._slot_pmf

    def decide(self: Any, *args: Any, **kwargs: Any) -> Any:
        _deciding[0] = True
        try:
            return _decide(self, *args, **kwargs)
        finally:
            _deciding[0] = False

    def slot_pmf(self: Any, *args: Any, **kwargs: Any) -> Any:
        names, pmf = _slot_pmf(self, *args, **kwargs)
        if _deciding[0] and names:
            return names, [1.0 / len(names)] * len(names)
        return names, pmf

    engine.CampaignModel.decide = decide  # type: ignore[method-assign]
    engine.CampaignModel._slot_pmf = slot_pmf  # type: ignore[method-assign]

if os.environ.get("SW_PAGE_CART"):
    import slotwise.proxy.bandit.features as features

    _page_cart = os.environ["SW_PAGE_CART"]
    _value_features = features._value_features

    def value_features(name: str, value: Any) -> list[str]:
        found = _value_features(name, value)
        if not name.startswith("page.cart_"):
            return found
        return [] if _page_cart == "none" else [f for f in found if "~~" in f]

    features._value_features = value_features
if os.environ.get("SW_SEGMENTS"):
    from pathlib import Path

    import slotwise.proxy.bandit.features as features
    from slotwise.dsl.compile import segments_of
    from slotwise.dsl.conditions import compile_condition
    from slotwise.dsl.parser import parse_policy
    from slotwise.types import Context

    _path = Path(os.environ["SW_SEGMENTS"])
    _named = segments_of([parse_policy(_path.read_text(), str(_path))])
    _members = [(name, compile_condition(s.condition, _named)) for name, s in _named.items()]
    _split = features.FeatureMap.split

    def _segments(kept: Any) -> list[str]:
        context = Context(kept, 0.0)
        return [f"segment={name}" for name, holds in _members if holds(context)]

    def split(self: Any, signals: Any, *, personal: bool) -> Any:
        kept, shared = _split(self, signals, personal=personal)
        named = _segments(kept)
        if named:
            shared["named"] = named
        return kept, shared

    def shared(self: Any, signals: Any, *, personal: bool) -> Any:
        return split(self, signals, personal=personal)[1]

    features.FeatureMap.split = split  # type: ignore[method-assign]
    features.FeatureMap.shared = shared  # type: ignore[method-assign]
