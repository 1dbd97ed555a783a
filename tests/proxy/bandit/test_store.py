from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from slotwise.proxy.bandit import BanditError, BanditRuntime, ModelStore
from slotwise.proxy.bandit.exploration import checked
from slotwise.proxy.bandit.workspace import new_workspace
from slotwise.types import DEFAULT_EXPLORE, Explore
from tests.proxy.bandit.campaigns import make_campaign

SIGNALS = {"consent.level": "personal", "device.type": "mobile"}


def _publish(store: ModelStore, campaign: str = "spring", examples: int = 1) -> int:
    info = store.publish(
        campaign, new_workspace(DEFAULT_EXPLORE), family="epsilon", examples=examples
    )
    return info.version


def test_publish_list_rollback(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    assert store.current("spring") is None
    assert [_publish(store, examples=n) for n in (10, 20, 30)] == [1, 2, 3]
    assert [i.version for i in store.versions("spring")] == [1, 2, 3]
    assert store.current_version("spring") == 3
    assert store.rollback("spring").version == 2
    assert store.rollback("spring", to=1).version == 1
    with pytest.raises(BanditError) as error:
        store.rollback("spring")
    assert error.value.code == "nothing_to_roll_back"
    with pytest.raises(BanditError) as error:
        store.rollback("spring", to=9)
    assert error.value.code == "unknown_model_version"
    assert _publish(store) == 4  # versions keep counting after a rollback
    assert store.campaigns() == ["spring"]


def test_bad_campaign_names_never_become_paths(tmp_path: Path) -> None:
    with pytest.raises(BanditError) as error:
        ModelStore(tmp_path).versions("../etc")
    assert error.value.code == "bad_campaign_name"


def test_old_versions_are_pruned(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, keep=3)
    for _ in range(6):
        _publish(store)
    assert [i.version for i in store.versions("spring")] == [4, 5, 6]


def test_corrupt_model_is_rejected_and_the_previous_keeps_serving(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    runtime = BanditRuntime(store, rng=random.Random(1))
    runtime.install([make_campaign("spring")])
    assert runtime.snapshot.versions() == {"spring": "v1"}
    second = store.info("spring", _publish(store))
    path = store.model_path(second)
    path.write_bytes(path.read_bytes()[:-7] + b"garbage")
    assert runtime.reload() == []
    assert runtime.snapshot.versions() == {"spring": "v1"}
    assert [e.code for e in runtime.errors] == ["corrupt_model"]
    assert runtime.choose("spring", {}, SIGNALS, "u") is not None
    # a model truncated together with a forged checksum is still refused, by VW's loader
    third = store.info("spring", _publish(store))
    path = store.model_path(third)
    truncated = path.read_bytes()[:40]
    path.write_bytes(truncated)
    meta = path.with_suffix(".json")
    forged = json.loads(meta.read_text())
    forged["sha256"] = hashlib.sha256(truncated).hexdigest()
    meta.write_text(json.dumps(forged))
    assert runtime.reload() == []
    assert [e.code for e in runtime.errors] == ["corrupt_model", "corrupt_model"]
    assert "Vowpal Wabbit cannot load" in runtime.errors[-1].message
    assert runtime.snapshot.versions() == {"spring": "v1"}
    _publish(store)
    assert runtime.reload() == ["spring"]
    assert runtime.snapshot.versions() == {"spring": "v4"}


def test_a_model_of_another_exploration_family_is_not_loaded(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    campaign = make_campaign("spring")
    squarecb = campaign.__class__(campaign.name, campaign.slots, Explore("squarecb", 10.0))
    runtime = BanditRuntime(store)
    runtime.install([squarecb])
    assert runtime.snapshot.versions() == {"spring": "v0"}
    assert [e.code for e in runtime.errors] == ["model_family_mismatch"]


@pytest.mark.parametrize(
    "explore", [Explore("squarecb", 10.0), Explore("softmax", 2.0), Explore("bag", 3.0)]
)
def test_every_exploration_kind_gives_a_distribution(explore: Explore) -> None:
    campaign = make_campaign(slots=1, variants=4)
    campaign = campaign.__class__(campaign.name, campaign.slots, explore)
    runtime = BanditRuntime(rng=random.Random(1))
    runtime.install([campaign])
    decision = runtime.choose(campaign.name, {}, SIGNALS, "u")
    assert decision is not None
    assert 0.0 < decision.choices[0].probability <= 1.0


def test_bad_exploration_settings_are_refused() -> None:
    for kind, parameter in (("epsilon", 1.5), ("bag", 1.0), ("softmax", 0.0), ("ucb", 1.0)):
        with pytest.raises(BanditError):
            checked(Explore(kind, parameter))


DAMAGES = {
    "version is a string": ('"version": 1', '"version": "1"'),
    "created is no time": ('"created": ', '"created": "x", "was": '),
    "unknown family": ('"family": "epsilon"', '"family": "bogus"'),
    "explore_parameter is no number": ('"explore_parameter": null', '"explore_parameter": "x"'),
    "parameter impossible for the family": ('"explore_parameter": null', '"explore_parameter": 5'),
    "not JSON": ("{", "{bad"),
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_damaged_metadata_is_one_unreadable_version_never_a_crash(
    tmp_path: Path, damage: tuple[str, str]
) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    _publish(store)
    meta = tmp_path / "spring" / "v000001.json"
    text = meta.read_text()
    assert damage[0] in text
    meta.write_text(text.replace(damage[0], damage[1], 1))
    infos, damaged = store.scan("spring")
    assert [i.version for i in infos] == [2]
    assert [(d.version, d.error.code) for d in damaged] == [(1, "corrupt_model")]
    assert str(meta) in damaged[0].error.message
    with pytest.raises(BanditError) as error:
        store.rollback("spring", to=1)
    assert error.value.code == "corrupt_model"
    assert "--to N" in error.value.message and "roll back with" not in error.value.message
    assert store.current_version("spring") == 2  # nothing moved
    with pytest.raises(BanditError) as error:
        store.rollback("spring")  # the only older version cannot be read
    assert error.value.code == "nothing_to_roll_back"
    store._set_current("spring", 1)
    with pytest.raises(BanditError) as error:
        store.current("spring")
    assert error.value.code == "corrupt_model"
    damaged_text = meta.read_bytes()
    assert _publish(store) == 3  # the damaged version's number is never reused
    assert meta.read_bytes() == damaged_text


@pytest.mark.parametrize(
    ("content", "says"),
    [("abc", "holds 'abc'"), ("", "is empty"), (None, "is missing"), ("9", "names v9")],
)
def test_a_current_that_names_no_version_says_what_is_wrong(
    tmp_path: Path, content: str | None, says: str
) -> None:
    store = ModelStore(tmp_path)
    _publish(store)
    _publish(store)
    current = tmp_path / "spring" / "CURRENT"
    if content is None:
        current.unlink()
    else:
        current.write_text(content)
    if content != "9":
        assert store.current("spring") is None  # what the proxies see: nothing to load
    with pytest.raises(BanditError) as error:
        store.checked_current("spring")
    assert error.value.code == "bad_current"
    assert str(current) in error.value.message and says in error.value.message
    assert "slotwise model rollback spring --to N" in error.value.message
    with pytest.raises(BanditError) as error:
        store.rollback("spring")
    assert error.value.code == "bad_current"
    assert store.rollback("spring", to=1).version == 1
    assert store.checked_current("spring") == 1
    assert ModelStore(tmp_path).checked_current("autumn") is None  # no model yet: no problem


def test_a_model_of_another_feature_layout_is_refused_and_the_campaign_starts_anew(
    tmp_path: Path,
) -> None:
    """A model whose metadata names another feature layout (an earlier or a later slotwise's)
    would have its weights read as other features: the runtime and the learner refuse it with
    model_layout_mismatch and start from a fresh model. Metadata written before layouts were
    recorded is layout 1, which slotwise built until layout 3: refused too."""
    from slotwise.proxy.bandit.workspace import LAYOUT
    from slotwise.proxy.learn.learner import Learner

    store = ModelStore(tmp_path)
    version = _publish(store)
    meta = tmp_path / "spring" / f"v{version:06d}.json"
    recorded = json.loads(meta.read_text())
    assert recorded["layout"] == LAYOUT == 3
    runtime = BanditRuntime(store)
    runtime.install([make_campaign("spring")])
    assert runtime.snapshot.versions() == {"spring": f"v{version}"}
    assert runtime.errors == []
    del recorded["layout"]
    for written, named in ((recorded, 1), ({**recorded, "layout": 2}, 2)):
        meta.write_text(json.dumps(written))
        runtime = BanditRuntime(store)
        runtime.install([make_campaign("spring")])
        assert runtime.snapshot.versions() == {"spring": "v0"}
        assert [e.code for e in runtime.errors] == ["model_layout_mismatch"]
        assert f"feature layout {named}" in runtime.errors[0].message
        learner = Learner([make_campaign("spring")], store)
        assert "model_layout_mismatch" in learner.warnings[0]
        assert "training spring from scratch" in learner.warnings[0]
