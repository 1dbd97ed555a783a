"""The recommendations step: in place, run when the policy set recommends, writes nothing yet.

With a campaign on the same storefront page, both steps run: tests/proxy/test_decide.py.
"""

from __future__ import annotations

from slotwise.proxy.personalisers.recommendations import Recommendations
from tests.proxy.personalisers.shells import check_shell

RECOMMEND = 'recommend for_you at "$.items" use trending(24h) limit 4\n'


def test_an_empty_step_at_its_place() -> None:
    check_shell(Recommendations(), RECOMMEND, "$.items")
