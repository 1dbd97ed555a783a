"""The holdout layer: a sticky control group per user and campaign, apart from exploration.

A user is in the control group of a campaign when the MurmurHash3 of (campaign, user) falls in
the first ``share`` of the 32-bit range. The same user stays in (or out of) a campaign's
control group on every request and every proxy process, with no state to store; different
campaigns draw independent groups. Control traffic gets the upstream response untouched and
is logged as holdout, so personalised and generic results compare on randomised groups.

Traffic without a stable user key (no consent: nothing identifying may be used) is assigned
per request with the same share: still an unbiased control, only not sticky.
"""

from __future__ import annotations

import random

import mmh3

_SEED = 0x5107_5157  # fixed: changing it reshuffles every control group
_RANGE = float(1 << 32)


def holdout_position(campaign: str, user_key: str) -> float:
    """Where (campaign, user) falls in [0, 1): below the holdout share means control."""
    return mmh3.hash(f"{campaign}\x1f{user_key}", _SEED, signed=False) / _RANGE


def in_holdout(campaign: str, user_key: str | None, share: float, rng: random.Random) -> bool:
    """Whether this request goes to the campaign's control group."""
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    if user_key is None:
        return rng.random() < share
    return holdout_position(campaign, user_key) < share
