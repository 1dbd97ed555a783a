"""scripts/obp_reference.py: numpy's legacy sampler reproduced bit for bit (values taken from
numpy 2.4's ``RandomState``), and the Open Bandit Dataset's shape converted to a log that
``slotwise evaluate`` scores exactly as obp's IPW does. The real sample is in the obp wheel
(docs/learning.md, "A published reference"); a miniature of its files stands in for it here."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from slotwise.proxy.cli import main

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "obp_reference.py"


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("obp_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_legacy_sampler_is_numpys_bit_for_bit(reference: ModuleType) -> None:
    # numpy.random.RandomState(12345).beta(a=[47, 8, 2.5], b=[1000, 300, 2]), twice
    rng = reference.LegacyRandomState(12345)
    pairs = [(47.0, 1000.0), (8.0, 300.0), (2.5, 2.0)]
    assert [rng.beta(a, b) for a, b in pairs] == [
        0.0427122409595537,
        0.042778574694921266,
        0.4767540052227195,
    ]
    assert [rng.beta(a, b) for a, b in pairs] == [
        0.053192259922126894,
        0.03683115476158763,
        0.5983991702236604,
    ]
    rng = reference.LegacyRandomState(7)  # RandomState(7).standard_gamma(1.0), (3.7)
    assert [rng.standard_gamma(1.0), rng.standard_gamma(3.7)] == [
        0.07937690952144451,
        2.8120054384966577,
    ]


HEADER = ",timestamp,item_id,position,click,propensity_score,user_feature_0\n"
ROWS = {
    "random": [(0, 1, 0, 1 / 3), (1, 2, 1, 1 / 3), (2, 3, 0, 1 / 3), (1, 1, 1, 1 / 3)],
    "bts": [(2, 1, 1, 0.6), (2, 2, 0, 0.5), (0, 3, 1, 0.2), (1, 1, 0, 0.3)],
}


def _wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        for policy, rows in ROWS.items():
            lines = [
                f"{n},2019-11-24 00:0{n}:00.000000+00:00,{item},{pos},{click},{p},x\n"
                for n, (item, pos, click, p) in enumerate(rows)
            ]
            folder = f"obp/dataset/obd/{policy}/all"
            wheel.writestr(f"{folder}/all.csv", HEADER + "".join(lines))
            wheel.writestr(f"{folder}/item_context.csv", ",item_id\n0,0\n1,1\n2,2\n")
        prior = "all:\n  alpha:\n    - 2.0\n    - 9.0\n    - 4.0\n  beta:\n"
        prior += "    - 30.0\n    - 20.0\n    - 40.0\n"
        wheel.writestr("obp/policy/conf/prior_bts.yaml", prior)
    return path


def test_the_dataset_becomes_a_log_evaluate_scores_as_obp_does(
    reference: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "obd"
    wheel = _wheel(tmp_path / "obp.whl")
    assert reference.main([str(wheel), "--out", str(out), "--n-sim", "500"]) == 0
    printed = capsys.readouterr().out
    assert "on-policy CTR of random: 2/4 = 0.500000" in printed
    ipw = float(printed.split("IPW of BTS on the random log: ")[1].split(";")[0])
    target = json.loads((out / "bts.json").read_text())
    assert set(target) == {"position_1", "position_2", "position_3"}
    assert all(abs(sum(d.values()) - 1) < 1e-9 for d in target.values())
    argv = ["evaluate", str(out / "random.jsonl"), "--format", "json"]
    argv += ["--candidate", f"probabilities:{out / 'bts.json'}", "--candidate", "uniform"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    bts, uniform = data["candidates"]
    assert data["decisions"] == 4 and data["logged"]["value"] == 0.5
    assert bts["ips"]["value"] == pytest.approx(ipw, abs=5e-7)  # the script prints 6 decimals
    assert uniform["ips"]["value"] == pytest.approx(0.5)  # uniform logging, against itself
