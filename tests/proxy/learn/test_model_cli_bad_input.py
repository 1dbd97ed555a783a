"""``slotwise model list|rollback`` over damaged model files: say what and where, never crash."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from slotwise.proxy.cli import main
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord
from slotwise.proxy.learn.log import write_log

ROOT = Path(__file__).resolve().parents[3]
POLICY = str(ROOT / "examples" / "scenarios" / "segment-winners.sw")


@pytest.fixture
def models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """spring_sale v1 and v2 (CURRENT), learned from a small log."""
    rng = random.Random(2)
    log = tmp_path / "log.jsonl"
    write_log(
        log,
        [
            DecisionRecord(
                id=f"d{i}",
                ts=float(i),
                campaign="spring_sale",
                slots=[
                    SlotRecord(
                        "image", rng.choice(["image_1", "image_2"]), 0.5, ["image_1", "image_2"]
                    )
                ],
            )
            for i in range(50)
        ],
    )
    directory = tmp_path / "models"
    argv = ["learn", "--policies", POLICY, "--log", str(log), "--models", str(directory)]
    assert main(argv) == 0 and main(argv) == 0
    capsys.readouterr()
    return directory


def _model(models: Path, *argv: str) -> int:
    return main(["model", "--models", str(models), *argv])


METADATA_DAMAGE = {
    "version is a string": ('"version": 1', '"version": "1"'),
    "created is no time": ('"created": ', '"created": "x", "was": '),
    "unknown family": ('"family": "squarecb"', '"family": "bogus"'),
    "explore_parameter is no number": ('"explore_parameter": 10.0', '"explore_parameter": "x"'),
    "not JSON": ("{", "{bad"),
}


@pytest.mark.parametrize("damage", METADATA_DAMAGE.values(), ids=METADATA_DAMAGE.keys())
def test_list_shows_damaged_metadata_as_unreadable_and_rollback_refuses_it(
    models: Path, capsys: pytest.CaptureFixture[str], damage: tuple[str, str]
) -> None:
    meta = models / "spring_sale" / "v000001.json"
    text = meta.read_text()
    assert damage[0] in text
    meta.write_text(text.replace(*damage, 1))
    assert _model(models, "list") == 0
    out, err = capsys.readouterr()
    assert [line.split()[1:3] for line in out.splitlines()[1:3]] == [
        ["v1", "unreadable"],
        ["*", "v2"],
    ]
    assert "warning: corrupt_model" in err and str(meta) in err
    assert _model(models, "--format", "json", "list") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["current"], bool(r["unreadable"])) for r in rows] == [
        (1, False, True),
        (2, True, False),
    ]
    assert _model(models, "rollback", "spring_sale", "--to", "1") == 1
    out, err = capsys.readouterr()
    assert out == "" and "corrupt_model" in err and "--to N" in err
    assert "roll back with" not in err  # advice that fits a rollback
    assert (models / "spring_sale" / "CURRENT").read_text().strip() == "2"


@pytest.mark.parametrize("content", ["abc", "", None])
def test_a_current_that_names_no_version_is_explained_and_can_be_set(
    models: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    current = models / "spring_sale" / "CURRENT"
    if content is None:
        current.unlink()
    else:
        current.write_text(content)
    assert _model(models, "list") == 0
    out, err = capsys.readouterr()
    assert "*" not in out  # no row is current, and no legend says one is
    assert "bad_current" in err and str(current) in err
    assert "slotwise model rollback spring_sale --to N" in err
    assert _model(models, "rollback", "spring_sale") == 1
    out, err = capsys.readouterr()
    assert out == "" and "bad_current" in err and "has no models" not in err
    assert _model(models, "rollback", "spring_sale", "--to", "1") == 0
    assert current.read_text().strip() == "1"


def test_rollback_to_a_corrupt_model_advises_another_version(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (models / "spring_sale" / "v000001.vw").write_bytes(b"garbage")
    assert _model(models, "rollback", "spring_sale") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "checksum mismatch" in err and "CURRENT is unchanged" in err
    assert "roll back with" not in err and "--to N" in err
