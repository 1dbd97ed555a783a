"""``slotwise export``: decisions and events written through the real store API (the proxy's
DecisionLog, the event collector) come out as the log ``slotwise evaluate`` reads, on every
backend, and evaluating the export gives the figures of evaluating the records directly."""

from __future__ import annotations

import asyncio
import csv
import json
import random
import subprocess
from pathlib import Path

import msgspec
import pytest

from slotwise.lab.evaluation import (
    FixedCandidate,
    UniformCandidate,
    UpstreamCandidate,
    evaluate,
    logged_value,
)
from slotwise.lab.target_policy import load_probabilities
from slotwise.proxy.cli import main
from slotwise.proxy.decision_codec import encode_stored
from slotwise.proxy.decision_log import DecisionRecord, SlotRecord, encode_record
from slotwise.proxy.events.collector import EventCollector
from slotwise.proxy.events.decisions import DecisionLog
from slotwise.proxy.events.schema import (
    ClickEvent,
    ConversionEvent,
    ConversionProps,
    Event,
    PageViewEvent,
)
from slotwise.proxy.learn.export import CSV_COLUMNS, ExportFilter, export_log
from slotwise.proxy.learn.join import join_log
from slotwise.proxy.learn.log import RewardRecord
from slotwise.proxy.state import LogRecord, Store, open_store
from slotwise.types import Goal
from tests.support.servers import RedisServer, require_binary

START = 1_764_000_000.0
GOAL = Goal.of({"clicks": 1, "conversions": 10})
IMAGES = ("img_1", "img_2", "img_3")


def _traffic(n: int = 600, seed: int = 5) -> tuple[list[DecisionRecord], list[Event]]:
    """Decisions of two campaigns (holdouts, a fail-open, two slots) and their events."""
    rng = random.Random(seed)
    decisions: list[DecisionRecord] = []
    events: list[Event] = []
    for i in range(n):
        ts = START + 10 * i
        campaign = "spring" if i % 7 else "other"
        holdout = i % 10 == 3
        image = rng.choice(IMAGES)
        slots = [
            SlotRecord("image", image, 1 / 3, IMAGES),
            SlotRecord("headline", "h1", 1.0, ("h1",)),
        ]
        decisions.append(
            DecisionRecord(
                id=f"-d{i}_x",  # ids may start with - or _ (issue 15)
                ts=ts,
                campaign=campaign,
                model_version="v3",
                holdout=holdout,
                holdout_share=0.1,
                personal=True,
                signals={"device.type": "mobile", "user.age": 30, "user.segments": ("vip",)},
                slots=[] if holdout else slots,
                eligible={"image": IMAGES, "headline": ("h1",)},
                format="json",
                fail_open="upstream_timeout" if i == 42 else None,
            )
        )
        decision_id = decisions[-1].id
        if rng.random() < (0.3 if image == "img_2" else 0.1):
            events.append(ClickEvent(id=f"c{i}", time=ts + 2, decision_id=decision_id))
        if rng.random() < 0.05:
            value = round(rng.uniform(5, 80), 2)
            properties = ConversionProps(value=value)
            events.append(
                ConversionEvent(
                    id=f"v{i}", time=ts + 60, decision_id=decision_id, properties=properties
                )
            )
        if i % 5 == 0:
            events.append(PageViewEvent(id=f"p{i}", time=ts + 1))
        if i % 11 == 0:
            events.append(ClickEvent(id=f"n{i}", time=ts + 3))  # no decision id: no reward
    return decisions, events


def _rewards(events: list[Event]) -> list[RewardRecord]:
    """What the events mean as rewards, written by hand from the event schema."""
    out = []
    for event in events:
        if isinstance(event, ClickEvent) and event.decision_id:
            assert event.time is not None
            out.append(RewardRecord(event.decision_id, event.time, "click"))
        elif isinstance(event, ConversionEvent) and event.decision_id:
            assert event.time is not None and event.properties.value is not None
            out.append(
                RewardRecord(event.decision_id, event.time, "conversion", event.properties.value)
            )
    return out


async def _write(url: str, decisions: list[DecisionRecord], events: list[Event]) -> None:
    async with open_store(url) as store:
        await _write_to(store, decisions, events)


async def _write_to(store: Store, decisions: list[DecisionRecord], events: list[Event]) -> None:
    async with DecisionLog(store) as log:
        # a log across an upgrade: records as the proxy stores them (the compact form) between
        # JSON records as versions before issue 22 stored them; both export alike
        for i, record in enumerate(decisions):
            encode = encode_record if i % 3 == 0 else encode_stored
            log.record(encode(record), decision_id=record.id, subject="u-1")
    await EventCollector(store).collect(events, consent="personal", received=START)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store of each backend (memory: no URL another process can read)."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    server: RedisServer = request.getfixturevalue("redis")
    cli = require_binary("redis-cli")
    subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(server.port), "flushall"],
        check=True,
        capture_output=True,
    )
    return server.url


def _export_both(
    url: str, tmp_path: Path, decisions: list[DecisionRecord], events: list[Event]
) -> tuple[Path, Path]:
    paths = tmp_path / "decisions.jsonl", tmp_path / "events.jsonl"
    if url == "memory://":
        # a memory store lives in one process: the library call is what the command runs

        async def run() -> None:
            async with open_store(url) as store:
                await _write_to(store, decisions, events)
                for kind, path in zip(("decisions", "events"), paths, strict=True):
                    with path.open("wb") as out:
                        await export_log(store, kind, out, page=64)

        asyncio.run(run())
        return paths
    asyncio.run(_write(url, decisions, events))
    for kind, path in zip(("decisions", "events"), paths, strict=True):
        assert main(["export", kind, "--store", url, "--output", str(path)]) == 0
    return paths


def test_store_export_evaluate_gives_the_figures_of_the_records(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    decisions, events = _traffic()
    exported = _export_both(backend, tmp_path, decisions, events)
    capsys.readouterr()
    lines = exported[0].read_text().splitlines()
    assert [msgspec.json.decode(line, type=DecisionRecord) for line in lines] == decisions
    rewards = _rewards(events)
    assert [json.loads(line) for line in exported[1].read_text().splitlines()] == [
        msgspec.to_builtins(r) for r in rewards
    ]
    target = tmp_path / "target.json"
    target.write_text('{"image": {"img_1": 0.2, "img_2": 0.7, "img_3": 0.1}}')
    names = ["uniform", "upstream", "fixed:image=img_2", f"probabilities:{target}"]
    argv = ["evaluate", *map(str, exported), "--campaign", "spring", "--goal"]
    argv += ["clicks=1,conversions=10", "--format", "json", "--bootstrap", "30", "--seed", "4"]
    for name in names:
        argv += ["--candidate", name]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)

    # the same records evaluated directly, without store, export or files
    ordered = sorted([*decisions, *rewards], key=lambda r: r.ts)
    joined, stats = join_log(ordered, lambda _: GOAL, window=3600.0)
    records = [
        j for j in joined if j.decision.fail_open is None and j.decision.campaign == "spring"
    ]
    candidates = [
        UniformCandidate(),
        UpstreamCandidate(),
        FixedCandidate({"image": "img_2"}, names[2]),
    ]
    candidates.append(load_probabilities(names[3], target))  # type: ignore[arg-type]
    assert data["decisions"] == len(records) and stats.unmatched == data["unmatched_rewards"] == 0
    assert data["logged"]["value"] == pytest.approx(logged_value(records).value, rel=1e-12)
    for row, candidate in zip(data["candidates"], candidates, strict=True):
        direct = evaluate(candidate, records)
        assert row["candidate"] == direct.candidate
        for name in ("ips", "snips", "dr"):
            assert row[name] == pytest.approx(getattr(direct, name).as_dict(), rel=1e-9)
        assert row["ess"] == pytest.approx(direct.ess, rel=1e-9)
    assert sum(1 for j in records if j.outcome.conversions) > 5  # conversions counted with value
    assert any(j.outcome.revenue > 0 for j in records)


def test_csv_has_one_documented_row_per_record(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if backend == "memory://":
        pytest.skip("the command cannot read another process's memory store")
    decisions, events = _traffic(n=80)
    asyncio.run(_write(backend, decisions, events))
    out = tmp_path / "d.csv"
    assert main(["export", "decisions", "--store", backend, "--format", "csv", "-o", str(out)]) == 0
    with out.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == CSV_COLUMNS["decisions"] and len(rows) == 80
    first = decisions[1]
    row = rows[1]
    assert row["id"] == first.id and float(row["ts"]) == first.ts and row["holdout"] == "false"
    slot = {"slot": "image", "variant": first.slots[0].variant, "probability": 1 / 3}
    assert json.loads(row["slots"])[0] == {**slot, "candidates": list(IMAGES)}
    assert json.loads(row["signals"])["user.segments"] == ["vip"]
    assert float(row["propensity"]) == pytest.approx(first.propensity)
    assert row["outcome"] == "" and rows[42]["fail_open"] == "upstream_timeout"
    assert main(["export", "events", "--store", backend, "--format", "csv"]) == 0
    text = capsys.readouterr().out
    events_rows = list(csv.DictReader(text.splitlines()))
    assert list(events_rows[0]) == CSV_COLUMNS["events"]
    assert len(events_rows) == len(_rewards(events))


def test_time_bounds_and_campaign_select_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    decisions, events = _traffic(n=100)
    url = f"sqlite:///{tmp_path}/state.db"
    asyncio.run(_write(url, decisions, events))
    capsys.readouterr()
    since, until = START + 200, START + 500  # decisions 20 to 49
    argv = ["export", "decisions", "--store", url, "--since", str(since)]
    assert main([*argv, "--until", "2025-11-24T16:08:20Z", "--campaign", "spring"]) == 0
    out, err = capsys.readouterr()
    ids = [json.loads(line)["id"] for line in out.splitlines()]
    expected = [d.id for d in decisions if since <= d.ts < until and d.campaign == "spring"]
    assert ids == expected and len(ids) == 30 - 5  # 21, 28, 35, 42, 49: the other campaign
    assert "25 decisions written to standard output (100 read; skipped: 70 outside" in err
    assert "5 of other campaigns, 0 unreadable)" in err
    assert main(["export", "events", "--store", url, "--since", "2025-11-24T16:03:20"]) == 0
    out, err = capsys.readouterr()
    assert all(json.loads(line)["ts"] >= since for line in out.splitlines())
    assert "not rewards" in err


async def test_bad_stored_records_are_skipped_and_counted(tmp_path: Path) -> None:
    async with open_store("memory://") as store:
        good = encode_record(_traffic(n=1)[0][0])
        await store.log_append(
            "decisions", [LogRecord(b"{nope"), LogRecord(good), LogRecord(b"[]")]
        )
        sink = tmp_path / "out.jsonl"
        with sink.open("wb") as out:
            stats = await export_log(store, "decisions", out, ExportFilter())
    assert (stats.read, stats.written, stats.unreadable) == (3, 1, 2)
    assert stats.first_unreadable is not None
    assert sink.read_bytes() == good + b"\n"


def _unused_port() -> int:
    from tests.support.servers import free_port

    return free_port()


ERRORS = {
    "unknown store": (["--store", "nosuch://x"], 2, "store_config: unknown store URL 'nosuch://x'"),
    "memory store": (["--store", "memory://"], 2, "memory:// is private to one process"),
    "unreachable redis": (
        ["--store", "redis://127.0.0.1:{port}/0?timeout=0.2"],
        1,
        "store_unavailable: --store redis://127.0.0.1:",
    ),
    "not a time": (["--since", "yesterday"], 2, "bad_time_bound: --since 'yesterday' is not a"),
    "an empty range": (
        ["--since", "2026-12-02", "--until", "2026-12-01"],
        2,
        "bad_time_bound: --since 2026-12-02 is not before --until 2026-12-01",
    ),
    "infinite": (["--until", "inf"], 2, "bad_time_bound: --until 'inf' is not a time"),
    "output is a directory": (["--output", "{tmp}"], 2, "unwritable_output: --output"),
    "output folder missing": (
        ["--output", "{tmp}/no/such/x.jsonl"],
        2,
        "unwritable_output: --output {tmp}/no/such/x.jsonl: the directory {tmp}/no/such does not",
    ),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_bad_requests_are_clear_errors_with_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: tuple[list[str], int, str]
) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    asyncio.run(_write(url, *_traffic(n=5)))
    capsys.readouterr()
    argv, code, says = case
    port = _unused_port()
    argv = [a.format(tmp=tmp_path, port=port) for a in argv]
    if "--store" not in argv:
        argv += ["--store", url]
    assert main(["export", "decisions", *argv]) == code
    out, err = capsys.readouterr()
    assert out == "" and says.format(tmp=tmp_path) in err, err
    assert "Traceback" not in err and "internal error" not in err


def test_a_missing_sqlite_store_is_named_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "state.db"
    assert main(["export", "events", "--store", f"sqlite:///{missing}"]) == 2
    err = capsys.readouterr().err
    assert f"store_not_found: --store sqlite:///{missing}: no state database at" in err
    assert not missing.exists()
    assert main(["export", "events", "--campaign", "spring", "--store", "sqlite:///x"]) == 2
    assert "--campaign selects decisions: events carry no campaign" in capsys.readouterr().err


def test_the_store_comes_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    asyncio.run(_write(url, *_traffic(n=5)))
    config = tmp_path / "slotwise.toml"
    config.write_text(f"[store]\nurl = '{url}'\n")
    out = tmp_path / "out.jsonl"
    assert main(["export", "decisions", "--config", str(config), "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_a_failed_export_leaves_no_output_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    port = _unused_port()
    argv = ["export", "decisions", "--store", f"redis://127.0.0.1:{port}/0?timeout=0.2"]
    assert main([*argv, "-o", str(out)]) == 1
    assert "nothing was written to --output" in capsys.readouterr().err
    assert out.read_text() == "previous\n"  # untouched, and no temporary file beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


@pytest.mark.slow
async def test_exporting_200000_records_keeps_memory_bounded(tmp_path: Path) -> None:
    """Peak memory of the export is a few pages of records, not the log: 200,000 decisions
    (about 90 MB of JSON) are exported with a peak below 4 MB of allocations."""
    import os
    import tracemalloc

    decision = _traffic(n=2)[0][1]
    async with open_store("memory://?max_log_entries=200000") as store:
        for start in range(0, 200_000, 10_000):
            batch = [
                LogRecord(encode_record(msgspec.structs.replace(decision, id=f"d{i}")))
                for i in range(start, start + 10_000)
            ]
            await store.log_append("decisions", batch)
        size = len(encode_record(decision)) * 200_000
        with open(os.devnull, "wb") as sink:
            tracemalloc.start()
            try:
                stats = await export_log(store, "decisions", sink)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert stats.written == 200_000
    assert size > 50_000_000 and peak < 4_000_000, (size, peak)
