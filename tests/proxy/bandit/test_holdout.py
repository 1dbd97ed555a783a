from __future__ import annotations

import random

from slotwise.proxy.bandit.holdout import holdout_position, in_holdout


def test_holdout_is_sticky_per_user_and_campaign_and_has_the_right_share() -> None:
    rng = random.Random(1)
    users = [f"u{i}" for i in range(20_000)]
    first = [in_holdout("spring", u, 0.1, rng) for u in users]
    again = [in_holdout("spring", u, 0.1, rng) for u in users]
    assert first == again
    share = sum(first) / len(users)
    assert 0.09 < share < 0.11  # binomial sd is 0.002
    other = [in_holdout("autumn", u, 0.1, rng) for u in users]
    both = sum(a and b for a, b in zip(first, other, strict=True)) / len(users)
    assert both < 0.02  # independent groups: about 1%


def test_edges_and_anonymous_traffic() -> None:
    rng = random.Random(2)
    assert not in_holdout("c", "u", 0.0, rng)
    assert in_holdout("c", "u", 1.0, rng)
    draws = [in_holdout("c", None, 0.25, rng) for _ in range(8000)]
    assert 0.22 < sum(draws) / len(draws) < 0.28
    assert 0.0 <= holdout_position("c", "u") < 1.0
