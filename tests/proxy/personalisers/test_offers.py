"""The offers step: in place, run when the policy set has offer sets, writes nothing yet."""

from __future__ import annotations

from slotwise.proxy.personalisers.offers import Offers
from tests.proxy.personalisers.shells import check_shell

OFFERS = """
offers checkout {
  slot at "$.offer"
  arms none, free_shipping
}
"""


def test_an_empty_step_at_its_place() -> None:
    check_shell(Offers(), OFFERS, "$.offer")
