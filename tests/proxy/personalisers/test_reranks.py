"""The re-ranks step: in place, run when the policy set re-ranks a list, writes nothing yet."""

from __future__ import annotations

from slotwise.proxy.personalisers.reranks import Reranks
from tests.proxy.personalisers.shells import check_shell

RERANK = 'rerank listing at "$.products" by affinity(clicks: category) limit 10\n'


def test_an_empty_step_at_its_place() -> None:
    check_shell(Reranks(), RERANK, "$.products")
