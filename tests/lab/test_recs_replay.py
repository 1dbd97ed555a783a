"""`slotwise recs replay`: events through the production recommenders, next-item scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slotwise.lab.recs_replay import (
    Share,
    catalogue_of,
    parse_strategy,
    read_events,
    replay,
    replay_events,
    split_strategies,
    wilson,
)
from slotwise.lab.recs_tune import blend_name, grid_blends, tune
from slotwise.proxy.cli import main
from slotwise.proxy.recommend.strategies import HYBRID, Blend

DAY = 86400.0
START = 1_700_000_000.0


def _view(event_id: str, at: float, subject: str, item: str) -> dict[str, object]:
    return {
        "type": "product_view",
        "id": event_id,
        "time": at,
        "anonymous_id": subject,
        "properties": {"product_id": item},
    }


def _events(path: Path, sessions: int = 60) -> Path:
    """Sessions that view a then b (and, every third one, c then d): co-views predict the
    next item, popularity does not (z is viewed most, alone)."""
    lines = []
    n = 0
    for s in range(sessions):
        at = START + s * 3 * 3600.0
        pairs = [("a", "b")] if s % 3 else [("c", "d")]
        for first, second in pairs:
            for item in (first, second):
                n += 1
                lines.append(_view(f"e{n}", at, f"s{s}", item))
                at += 60.0
        for _ in range(3):
            n += 1
            lines.append(_view(f"e{n}", at + 4000.0, f"z{s}", "z"))
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_co_views_predict_the_next_item_where_popularity_does_not(tmp_path: Path) -> None:
    strategies = [parse_strategy(s) for s in ("most_popular", "also_viewed", "hybrid")]
    result = replay(_events(tmp_path / "events.jsonl"), strategies, k=1)
    by_name = {r.strategy: r for r in result.results}
    assert result.scored > 10 and result.events == 60 * 5
    assert by_name["most_popular"].hr.value == 0.0  # z, never the next item
    assert by_name["also_viewed"].hr.value == 1.0  # learned from earlier sessions only
    assert by_name["hybrid"].hr.value == 1.0
    assert by_name["also_viewed"].mrr.value == 1.0 and by_name["also_viewed"].ndcg.value == 1.0


def test_nothing_of_the_future_is_learned(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    views = [("s1", "a", 0), ("s1", "b", 60)]  # the only co-view: scoring it sees nothing yet
    path.write_text("".join(
        json.dumps({"type": "product_view", "id": f"e{n}", "time": START + t,
                    "anonymous_id": s, "properties": {"product_id": i}}) + "\n"
        for n, (s, i, t) in enumerate(views)
    ))  # fmt: skip
    result = replay(path, [parse_strategy("also_viewed")], k=10, score_from=0.0)
    assert result.scored == 1 and result.results[0].hr.value == 0.0


def test_wilson_intervals() -> None:
    interval = wilson(8, 100)
    assert interval.low == pytest.approx(0.0411, abs=1e-3)
    assert interval.high == pytest.approx(0.1500, abs=1e-3)


def test_the_command_text_json_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = _events(tmp_path / "events.jsonl")
    argv = ["recs", "replay", str(events), "--strategies", "also_viewed,trending(24h)", "--k", "3"]
    assert main([*argv, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in report["results"]] == ["also_viewed", "trending(24h)"]
    assert report["events"] == 300 and report["events_per_second"] > 0
    assert main([*argv, "--score-from", "2023-11-15"]) == 0
    out = capsys.readouterr().out
    assert "HR@3" in out and "also_viewed" in out and "from 2023-11-15 00:00 UTC" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "product_view", "id": "x", "properties": {}}\n')
    assert main(["recs", "replay", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "invalid_events_file" in err and "bad.jsonl:1" in err and "product_id" in err
    assert main([*argv[:3], "--strategies", "magic"]) == 2
    assert "unknown strategy 'magic'" in capsys.readouterr().err
    assert main(["recs", "replay", str(tmp_path / "absent.jsonl")]) == 2


def test_a_scoring_period_scores_only_its_views(tmp_path: Path) -> None:
    events = _events(tmp_path / "events.jsonl")
    strategies = [parse_strategy("also_viewed")]
    whole = replay(events, strategies, score_from=0.0)
    before = replay(events, strategies, score_from=0.0, score_until=Share(0.5))
    after = replay(events, strategies, score_from=Share(0.5))
    assert 0 < before.scored < whole.scored and before.scored + after.scored == whole.scored
    assert before.score_until is not None and after.score_until is None
    # learning goes on over every event: the later period scores with more learned
    assert after.results[0].hr.value >= before.results[0].hr.value


def test_hybrid_weights_as_given(tmp_path: Path) -> None:
    assert split_strategies("similar, hybrid(co_buy=0, scan=25),trending(7d)") == [
        "similar", "hybrid(co_buy=0, scan=25)", "trending(7d)",
    ]  # fmt: skip
    given = parse_strategy("hybrid(co_buy=0, similar=0.5 scan=25)")
    assert given.blend == Blend(co_view=1.0, co_buy=0.0, similar=0.5, popular=0.15, scan=25)
    assert parse_strategy("hybrid").blend == HYBRID
    for bad in ("hybrid(magic=1)", "hybrid(similar=-1)", "hybrid(scan=2.5)", "hybrid(co_buy=x)"):
        with pytest.raises(ValueError, match="non-negative numbers"):
            parse_strategy(bad)
    # popularity alone ranks z first, which is never the next item
    events = _events(tmp_path / "events.jsonl")
    names = ["hybrid(co_view=0, co_buy=0, similar=0, popular=1)", "hybrid(co_view=1, popular=0)"]
    result = replay(events, [parse_strategy(n) for n in names], k=1)
    assert [r.hr.value for r in result.results] == [0.0, 1.0]


def test_the_command_takes_periods_and_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = _events(tmp_path / "events.jsonl")
    argv = ["recs", "replay", str(events), "--strategies", "similar,hybrid(co_buy=0, scan=25)"]
    assert main([*argv, "--score-from", "20%", "--score-until", "60%", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in report["results"]] == ["similar", "hybrid(co_buy=0, scan=25)"]
    assert report["score_from"] < report["score_until"]
    assert main([*argv, "--score-until", "2023-11-15"]) == 0
    assert "to 2023-11-15 00:00" in capsys.readouterr().out
    assert main([*argv, "--score-from", "120%"]) == 2
    assert "--score-from: '120%' is not a share of the events" in capsys.readouterr().err
    assert main([*argv[:3], "--strategies", "hybrid(similar=lots)"]) == 2
    assert "non-negative numbers" in capsys.readouterr().err


def test_tuning_reads_the_tune_period_only(tmp_path: Path) -> None:
    events = list(read_events(_events(tmp_path / "events.jsonl")))
    catalogue = catalogue_of(None, events)
    blends = [HYBRID, Blend(0.0, 0.0, 0.0, 1.0), Blend(1.0, 0.0, 0.0, 0.0)]
    tuned = tune(events, catalogue, blends, k=1, tune_from=Share(0.3), test_from=Share(0.6))
    tune_only = replay_events(
        events, catalogue, [parse_strategy("hybrid")], k=1, score_from=Share(0.3),
        score_until=Share(0.6),
    )  # fmt: skip
    assert tuned.replay.scored == tune_only.scored > 0
    assert tuned.replay.score_until == tune_only.score_until
    # popularity alone loses; of the two that tie on HR and NDCG, the grid's first wins
    assert tuned.chosen == HYBRID and tuned.ranking[-1][0] == Blend(0.0, 0.0, 0.0, 1.0)
    assert parse_strategy(blend_name(tuned.chosen)).blend == HYBRID
    assert blend_name(Blend(1.0, 0.5, 0.2, 0.0, 60)) == (
        "hybrid(co_view=1, co_buy=0.5, similar=0.2, popular=0, scan=60)"
    )
    grid = grid_blends({"co_buy": (0.0, 1.0), "similar": (0.0, 0.5), "popular": (0.0,),
                        "scan": (25, 40)})  # fmt: skip
    assert grid[0] == HYBRID and len(grid) == 1 + 2 * (1 + 2)  # no scans without similarity
