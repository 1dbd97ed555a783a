"""Offline replay of recommenders: events in time order, the production code, next-item scores.

``slotwise recs replay EVENTS.jsonl`` reads events of the ``/_sw/events`` schema (one JSON
object per line, in time order; each validated by the production decoder) and runs them
through the recommenders as the proxy does:

- every event is learned from as it comes (``slotwise.proxy.recommend.state.learn`` and
  ``write``, into a ``memory://`` store): nothing of the future is ever seen;
- the trending rankings are recomputed from the store (``TrendingIndex.refresh``) before a
  view is scored when they are more than ``refresh`` seconds of event time old (an hour;
  production: every ``refresh_interval`` of wall time);
- at each product view at or after ``score_from`` (and before ``score_until``, a tuning
  period: slotwise.lab.recs_tune) whose session has a later view of another
  product, every strategy ranks with the production code (``strategies.rank`` with the
  viewed product as the page's product, then ``lists.select``, which never recommends the
  page's own product), reading the neighbours of its seeds from the store, at that view,
  before it is learned from; the next other product viewed in the session is the target
  (which views are scored is read ahead, :func:`next_products`; nothing else is).

A session is one subject's (``user_id``, else ``anonymous_id``) events with no gap longer
than ``session_gap`` (30 minutes); events without either are learned from (trending) and not
scored. The visitor of a scored view is built from the subject's last ``history`` events, as
the proxy builds it from the stored history.

Figures per strategy: HR@K (the target among the top K), MRR@K (1/rank, 0 beyond K),
NDCG@K (1/log2(rank + 1)), with 95% intervals (Wilson for HR, normal for the means), and
catalogue coverage (distinct products recommended / products in the catalogue). The
``most_popular`` baseline ranks by all-time counts of the events seen so far (views 1, carts
2, purchases 3, as trending counts them) and is not a production strategy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from slotwise.errors import RECS, SlotwiseError
from slotwise.proxy.catalogue import CatalogueSnapshot, Item, parse_feed
from slotwise.proxy.events.schema import Event, Rejection, decode_event, event_type
from slotwise.proxy.recommend.config import RecsConfig
from slotwise.proxy.recommend.lists import select
from slotwise.proxy.recommend.state import TREND_WEIGHTS, Observed, Past, items_of, learn, write
from slotwise.proxy.recommend.strategies import (
    HYBRID,
    NEIGHBOURS_READ,
    Blend,
    Inputs,
    neighbour_keys,
    rank,
    seeds_for,
)
from slotwise.proxy.recommend.trending import TrendingIndex
from slotwise.proxy.recommend.visitor import Visitor, visitor_of
from slotwise.proxy.state.memory import MemoryStore

DEFAULT_STRATEGIES = (
    "most_popular", "trending(7d)", "last_visit(20)", "also_viewed", "also_bought", "similar",
    "hybrid",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Share:
    """A time given as a share of the events: the time by which that fraction happened."""

    fraction: float  # 0..1


DEFAULT_SCORE_FROM = Share(0.7)  # the test period: after 70% of the events
_DURATIONS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ENCODE = msgspec.json.Encoder()


class EventsFileError(SlotwiseError):
    """The events file cannot be read, or a line is not an event of the schema."""

    area = RECS
    code = "invalid_events_file"


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str  # as given: trending(7d)
    kind: str
    parameter: str | float
    blend: Blend = HYBRID  # hybrid's weights: production's, or as given in hybrid(...)


def split_strategies(text: str) -> list[str]:
    """``a,hybrid(similar=0.5,scan=60),b`` -> three names (commas inside parentheses stay)."""
    names, depth, start = [], 0, 0
    for at, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            names.append(text[start:at])
            start = at + 1
    names.append(text[start:])
    return [name.strip() for name in names if name.strip()]


def parse_blend(name: str, argument: str) -> Blend:
    """``co_view=1, co_buy=0.5, similar=0.35, popular=0.15, scan=40`` (any of them; the
    others production's)."""
    given: dict[str, float] = {}
    fields = Blend.__dataclass_fields__
    for pair in argument.replace(",", " ").split():
        key, _, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if key not in fields or number < 0 or (key == "scan" and not number.is_integer()):
            raise ValueError(
                f"{name}: weights like hybrid(co_view=1, co_buy=1, similar=0.35, popular=0.15, "
                f"scan=40): non-negative numbers, scan a whole one ({pair!r})"
            )
        given[key] = number
    scan = int(given.pop("scan", HYBRID.scan))
    return dataclasses.replace(HYBRID, scan=scan, **given)


def parse_strategy(text: str) -> Strategy:
    """``trending(24h)``, ``last_visit(20)``, ``also_viewed``, ``hybrid``,
    ``hybrid(similar=0.5, scan=60)``, ``most_popular``."""
    name = text.strip()
    kind, _, rest = name.partition("(")
    argument = rest.rstrip(")").strip()
    if kind == "hybrid" and argument:
        return Strategy(name, kind, "", parse_blend(name, argument))
    if kind == "trending":
        unit = argument[-1:] if argument else "d"
        number = argument[:-1] if argument else "7"
        if unit not in _DURATIONS or not number.replace(".", "", 1).isdigit():
            raise ValueError(f"{name}: a window like trending(24h) or trending(7d)")
        return Strategy(name, kind, float(number) * _DURATIONS[unit])
    if kind == "last_visit":
        views = argument.removesuffix("views").strip() or "20"
        if not views.isdigit():
            raise ValueError(f"{name}: a number of views like last_visit(20)")
        return Strategy(name, kind, float(views))
    if kind in ("also_viewed", "also_bought", "similar", "hybrid", "most_popular"):
        return Strategy(name, kind, "")
    raise ValueError(
        f"unknown strategy {name!r}; strategies: most_popular, trending(W), last_visit(N), "
        "also_viewed, also_bought, similar, hybrid"
    )


@dataclass(slots=True)
class Tally:
    """One strategy's scores so far."""

    hits: int = 0
    reciprocal: list[float] = field(default_factory=list)
    gains: list[float] = field(default_factory=list)
    shown: set[str] = field(default_factory=set)

    def add(self, ranked: Sequence[str], target: str) -> None:
        self.shown.update(ranked)
        try:
            position = ranked.index(target) + 1
        except ValueError:
            self.reciprocal.append(0.0)
            self.gains.append(0.0)
            return
        self.hits += 1
        self.reciprocal.append(1.0 / position)
        self.gains.append(1.0 / math.log2(position + 1))


@dataclass(frozen=True, slots=True)
class Interval:
    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class StrategyResult:
    strategy: str
    scored: int
    hr: Interval
    mrr: Interval
    ndcg: Interval
    coverage: float


@dataclass(frozen=True, slots=True)
class ReplayResult:
    events: int
    scored: int
    sessions: int
    catalogue: int
    k: int
    score_from: float
    score_until: float | None  # None: to the end
    seconds: float  # wall-clock time of the replay itself (reading the file not included)
    cpu_seconds: float  # this process's CPU time over the same span
    results: tuple[StrategyResult, ...]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def wilson(hits: int, n: int, z: float = 1.96) -> Interval:
    if n == 0:
        return Interval(0.0, 0.0, 0.0)
    p = hits / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: Sequence[float], z: float = 1.96) -> Interval:
    n = len(values)
    if n == 0:
        return Interval(0.0, 0.0, 0.0)
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(variance / n)
    return Interval(mean, max(0.0, mean - half), mean + half)


def read_events(path: Path) -> Iterator[Event]:
    """The file's events; EventsFileError naming the line of the first bad one."""
    try:
        file = path.open("rb")
    except OSError as exc:
        raise EventsFileError(f"cannot open {path}: {exc.strerror}", where=str(path)) from None
    with file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            event = decode_event(line)
            if isinstance(event, Rejection):
                raise EventsFileError(
                    f"{path}:{number}: not an event: {event.path}: {event.reason}",
                    where=f"{path}:{number}",
                    hint="one event of the /_sw/events schema per line (docs/events.md)",
                )
            yield event


@dataclass(slots=True)
class _Subject:
    last: float = -math.inf
    session: int = 0
    history: deque[tuple[str, float, bytes]] = field(default_factory=lambda: deque(maxlen=200))


class Replay:
    """One replay: feed events with :meth:`feed`, then :meth:`result`."""

    def __init__(
        self,
        strategies: Sequence[Strategy],
        catalogue: CatalogueSnapshot,
        *,
        k: int = 10,
        score_from: float = -math.inf,
        score_until: float = math.inf,
        session_gap: float = 1800.0,
        refresh: float = 3600.0,
        config: RecsConfig | None = None,
    ) -> None:
        self.strategies = strategies
        self.catalogue = catalogue
        self.k = k
        self.score_from = score_from
        self.score_until = score_until
        self.config = config or RecsConfig(session_gap=session_gap)
        self.refresh_every = refresh
        self.store = MemoryStore(max_log_entries=1)
        self.trending = TrendingIndex(self.config)
        self.windows = {float(s.parameter) for s in strategies if s.kind == "trending"}
        self.windows.add(self.config.trending_max_window)
        self.tallies = {s.name: Tally() for s in strategies}
        self.popular = _Leaders(k + 1)
        self.pasts: dict[str, Past] = {}
        self.subjects: dict[str, _Subject] = {}
        self.events = self.scored = self.sessions = 0
        self.next_refresh = -math.inf

    async def feed(self, event: Event, target: str | None = None) -> None:
        """Learn from one event; ``target``: the next other product its subject views in the
        session (``next_products``), when it is a product view to score: it is ranked now,
        before this event is learned, as the proxy would rank on that product's page."""
        self.events += 1
        at = event.time
        if at is None:
            return
        kind = event_type(event)
        subject = event.user_id or event.anonymous_id
        properties = getattr(event, "properties", None)
        data = _ENCODE.encode(properties) if properties is not None else b""
        items = items_of(kind, data)
        state = self._subject(subject, at) if subject is not None else None
        scoring = self.score_from <= at < self.score_until
        if target is not None and items and state is not None and scoring:
            await self._rank_all(items[0], at, list(state.history), target)
        if kind in TREND_WEIGHTS and items:
            weight = TREND_WEIGHTS[kind]
            for item in items:
                self.popular.add(item, weight)
            past = self.pasts.setdefault(subject, Past()) if subject is not None else None
            pasts = {subject: past} if subject is not None and past is not None else {}
            increments = learn([Observed(subject, kind, at, items)], pasts, self.config)
            await write(self.store, increments, self.config)
        if state is not None:
            state.history.append((kind, at, data))

    def _subject(self, subject: str, at: float) -> _Subject:
        state = self.subjects.get(subject)
        if state is None:
            state = self.subjects[subject] = _Subject()
        if at - state.last > self.config.session_gap:
            state.session += 1
            self.sessions += 1
        state.last = at
        return state

    async def _rank_all(
        self, page: str, at: float, history: list[tuple[str, float, bytes]], target: str
    ) -> None:
        self.scored += 1
        if at >= self.next_refresh:  # recomputed when a ranking needs it, at most every refresh
            await self.trending.refresh(self.store, at, self.windows)
            self.next_refresh = at + self.refresh_every
        # the visitor as the proxy reads it on that page: the history before the view
        visitor = visitor_of(history, ())
        for strategy in self.strategies:
            if strategy.kind == "most_popular":
                ranked = [i for i in self.popular.top() if i != page][: self.k]
            else:
                ranked = await self._rank(strategy, page, visitor)
            self.tallies[strategy.name].add(ranked, target)

    async def _rank(self, strategy: Strategy, page: str, visitor: Visitor) -> list[str]:
        seeds = seeds_for(strategy.kind, strategy.parameter, (), page, visitor)
        keys = list(dict.fromkeys(neighbour_keys(strategy.kind, seeds)))
        found = await self.store.scores_top(keys, NEIGHBOURS_READ) if keys else []
        neighbours = {
            key: [(m.decode(), s) for m, s in top] for key, top in zip(keys, found, strict=True)
        }
        inputs = Inputs(
            self.catalogue, self.trending.current, neighbours, seeds, visitor,
            self.config.trending_max_window, strategy.blend,
        )  # fmt: skip
        ranked = rank(strategy.kind, strategy.parameter, inputs, 4 * self.k + 40)
        return select(ranked, self.catalogue, visitor, (), self.k, None, page)

    def result(self, seconds: float, cpu_seconds: float) -> ReplayResult:
        results = []
        for strategy in self.strategies:
            tally = self.tallies[strategy.name]
            n = len(tally.reciprocal)
            results.append(
                StrategyResult(
                    strategy.name,
                    n,
                    wilson(tally.hits, n),
                    mean_interval(tally.reciprocal),
                    mean_interval(tally.gains),
                    len(tally.shown) / len(self.catalogue) if len(self.catalogue) else 0.0,
                )
            )
        return ReplayResult(
            self.events, self.scored, self.sessions, len(self.catalogue), self.k,
            self.score_from, None if math.isinf(self.score_until) else self.score_until,
            seconds, cpu_seconds, tuple(results),
        )  # fmt: skip


class _Leaders:
    """All-time counts and their ``size`` leaders, kept as counts grow (the baseline)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.counts: dict[str, float] = {}
        self.leaders: list[tuple[float, str]] = []  # best first: (count, item) descending

    def add(self, item: str, amount: float) -> None:
        count = self.counts[item] = self.counts.get(item, 0.0) + amount
        leaders = self.leaders
        if len(leaders) < self.size or (count, item) > leaders[-1]:
            # counts only grow: an item outside the leaders enters only past the last of them
            self.leaders = sorted(
                [(c, i) for c, i in leaders if i != item] + [(count, item)], reverse=True
            )[: self.size]

    def top(self) -> list[str]:
        return [item for _, item in self.leaders]


def next_products(events: Sequence[Event], session_gap: float) -> dict[int, str]:
    """Which product views are scored, and against what: index of a view -> the next other
    product its subject views in the same session (the first of a run of views of one
    product is the one scored). Read ahead only to choose what to score: each view is
    ranked with what was learned before it."""
    targets: dict[int, str] = {}
    last: dict[str, float] = {}
    waiting: dict[str, tuple[int, str]] = {}  # subject -> (index, product) of its last view
    for index, event in enumerate(events):
        subject = event.user_id or event.anonymous_id
        if subject is None or event.time is None:
            continue
        if event.time - last.get(subject, -math.inf) > session_gap:
            waiting.pop(subject, None)  # a new session
        last[subject] = event.time
        if event_type(event) != "product_view":
            continue
        item = items_of("product_view", _ENCODE.encode(event.properties))
        if not item:
            continue
        pending = waiting.get(subject)
        if pending is not None and pending[1] == item[0]:
            continue  # the same product again: the first view of it waits on
        if pending is not None:
            targets[pending[0]] = item[0]
        waiting[subject] = (index, item[0])
    return targets


def catalogue_of(path: Path | None, events: Iterable[Event]) -> CatalogueSnapshot:
    """The catalogue file's items, else every product the events name (ids only)."""
    if path is not None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EventsFileError(f"cannot open {path}: {exc.strerror}", where=str(path)) from None
        return CatalogueSnapshot.of(parse_feed(data, str(path)))
    seen: dict[str, Item] = {}
    for event in events:
        properties = getattr(event, "properties", None)
        if properties is None:
            continue
        for item in items_of(event_type(event), _ENCODE.encode(properties)):
            if item not in seen:
                seen[item] = Item(id=item)
    return CatalogueSnapshot.of(seen.values())


def time_of(at: float | Share, times: Sequence[float]) -> float:
    """``at`` as a time: itself, or the share's quantile of the (sorted) event times."""
    if not isinstance(at, Share):
        return at
    return times[int(at.fraction * (len(times) - 1))] if times else 0.0


def replay(
    path: Path,
    strategies: Sequence[Strategy],
    *,
    catalogue: Path | None = None,
    k: int = 10,
    score_from: float | Share | None = None,
    score_until: float | Share | None = None,
    session_gap: float = 1800.0,
    refresh: float = 3600.0,
) -> ReplayResult:
    """Replay the events file (see the module docstring); ``score_from`` None: the views after
    the time by which 70% of the events happened are scored (learning goes on over all);
    ``score_until``: only views before it are scored (a tuning period ending where the
    test period starts)."""
    events = list(read_events(path))
    snapshot = catalogue_of(catalogue, events if catalogue is None else ())
    return replay_events(
        events, snapshot, strategies, k=k, score_from=score_from, score_until=score_until,
        session_gap=session_gap, refresh=refresh,
    )  # fmt: skip


def replay_events(
    events: Sequence[Event],
    snapshot: CatalogueSnapshot,
    strategies: Sequence[Strategy],
    *,
    k: int = 10,
    score_from: float | Share | None = None,
    score_until: float | Share | None = None,
    session_gap: float = 1800.0,
    refresh: float = 3600.0,
) -> ReplayResult:
    """:func:`replay` of events already read (the tuning replays them many times)."""
    times = sorted(e.time for e in events if e.time is not None)
    start = time_of(DEFAULT_SCORE_FROM if score_from is None else score_from, times)
    end = math.inf if score_until is None else time_of(score_until, times)
    run = Replay(
        strategies, snapshot, k=k, score_from=start, score_until=end,
        session_gap=session_gap, refresh=refresh,
    )  # fmt: skip

    targets = next_products(events, session_gap)

    async def go() -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.process_time()
        for index, event in enumerate(events):
            await run.feed(event, targets.get(index))
        return time.perf_counter() - started, time.process_time() - cpu

    seconds, cpu_seconds = asyncio.run(go())
    return run.result(seconds, cpu_seconds)
