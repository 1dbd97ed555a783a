"""`slotwise demo`: the example ad server behind the proxy, with simulated shoppers.

Starts examples/adserver and `slotwise serve` in front of it (real processes on free loopback
ports, a SQLite state store in a temporary directory), seeds a few user profiles, sends traffic
from several audience segments (JSON creatives, OpenRTB native bids, VAST pre-rolls), fires
impression pixels and some signed clicks, prints what each segment was served; then runs a
shopper's journey through examples/storefront behind a second proxy (trending, last visit, a
re-ranked listing, bought together: slotwise.proxy.cli.demo_shop), and stops everything it
started. Then it shows learning: the default simulator scenario drives simulated
users through the real decision path (bandit, rules, reward join, learner, model store) and
the demo prints how the personalised CTR rises above the control group's, and the lift by
segment. Finishes by itself in well under a minute. ``--config`` (else ``$SLOTWISE_CONFIG``)
is validated first and handed to the proxy; the demo's own upstream, policies, port, store and
models directory override it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slotwise.proxy.cli import EXIT_FAILED, UsageError, add_config_option, read_settings
from slotwise.proxy.loopback import free_port

REPO = Path(__file__).resolve().parents[2]  # the checkout (the package itself when installed)
# the ad server, its policies and the scenarios, packaged as slotwise.examples
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
_DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
_VAST_NS = {"v": "http://www.iab.com/VAST"}
# the native request's assets (as in the IAB Native 1.2 example 6.1, plus a CTA text)
_NATIVE_ASSETS = [
    {"id": 123, "required": 1, "title": {"len": 140}},
    {"id": 128, "required": 0, "img": {"wmin": 836, "hmin": 627, "type": 3}},
    {"id": 124, "required": 1, "img": {"wmin": 50, "hmin": 50, "type": 1}},
    {"id": 126, "required": 1, "data": {"type": 1, "len": 25}},
    {"id": 127, "required": 1, "data": {"type": 2, "len": 140}},
    {"id": 129, "required": 0, "data": {"type": 12, "len": 15}},
]


@dataclass(frozen=True)
class Segment:
    name: str
    user_agent: str
    country: str
    consent: bool
    age: int | None = None
    segments: tuple[str, ...] = ()


SEGMENTS = (
    Segment("young mobile shoppers, Germany", _IPHONE, "DE", True, age=21),
    Segment("young mobile shoppers, France", _IPHONE, "FR", True, age=22),
    Segment("loyal desktop customers, US", _DESKTOP, "US", True, age=45, segments=("loyal",)),
    Segment("visitors without consent, UK", _DESKTOP, "GB", False),
)


@dataclass
class Served:
    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, what: str, value: str | None) -> None:
        self.counts.setdefault(what, Counter())[value or "(missing)"] += 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=7, help="random seed for the simulated traffic")
    parser.add_argument("--users", type=int, default=8, help="simulated users per segment")
    parser.add_argument("--requests", type=int, default=3, help="ad requests per user and format")
    parser.add_argument(
        "--policies",
        type=Path,
        help="policy directory (default: policies/ if it holds any, else the ad server's)",
    )
    parser.add_argument(
        "--learn-impressions",
        type=int,
        default=None,
        metavar="N",
        help="simulated impressions for the learning part (0 skips it; default: the "
        "scenario's, 50000)",
    )
    add_config_option(parser)


def run(args: argparse.Namespace) -> int:
    import asyncio

    import httpx

    # absolute: the proxy and the ad server run from the repository, not from here
    policies = (args.policies or _default_policies()).resolve()
    if not policies.is_dir():
        why = "is not a directory" if policies.exists() else "does not exist"
        raise UsageError(f"--policies: {policies} {why}")
    if args.learn_impressions is not None and args.learn_impressions < 0:
        raise UsageError("--learn-impressions must be 0 (skip) or more")
    if args.users < 1 or args.requests < 1:
        raise UsageError("--users and --requests must be at least 1")
    read_settings(args, {})  # a bad configuration stops the demo before anything starts
    config = [] if args.config is None else ["--config", str(args.config.resolve())]
    from slotwise.proxy.cli.serve import check_policies

    problem = check_policies(policies, "demo")  # as serve would refuse them, before any start
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_FAILED
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="slotwise-demo-") as tmp:
        store_url = f"sqlite:///{tmp}/state.db"
        users = _users(args.users)
        ad_port, proxy_port = free_port(), free_port()
        admin_token = secrets.token_urlsafe(24)
        # the demo has no mail server: triggers queue their notifications, nothing sends them
        env = dict(os.environ, SLOTWISE_ADMIN_TOKEN=admin_token, SLOTWISE_NOTIFY_SENDER="false")
        print(f"slotwise demo: policies from {_shown(policies)}")
        with (
            _process(
                [
                    sys.executable,
                    "-m",
                    "granian",
                    "--interface",
                    "asgi",
                    "--port",
                    str(ad_port),
                    "--log-level",
                    "warning",
                    "slotwise.examples.adserver.app:app",
                ],
                env,
                Path(tmp) / "adserver.log",
            ),
            _process(
                [
                    sys.executable,
                    "-m",
                    "slotwise",
                    "serve",
                    "--upstream",
                    f"http://127.0.0.1:{ad_port}",
                    "--policies",
                    str(policies),
                    "--port",
                    str(proxy_port),
                    "--store",
                    store_url,
                    "--models",
                    f"{tmp}/models",
                    *config,
                ],
                env,
                Path(tmp) / "proxy.log",
            ) as proxy,
        ):
            base = f"http://127.0.0.1:{proxy_port}"
            if not _wait_ready(base, proxy, Path(tmp) / "proxy.log"):
                return EXIT_FAILED
            print(f"  example ad server  http://127.0.0.1:{ad_port}  (JSON, OpenRTB native, VAST)")
            print(f"  slotwise proxy     {base}\n")
            with httpx.Client(base_url=base, timeout=10.0) as client:
                _import_profiles(client, users, admin_token)
                originals = _originals(f"http://127.0.0.1:{ad_port}")
                started = time.perf_counter()
                served, sent, clicks = _traffic(client, users, args.requests, rng)
                elapsed = time.perf_counter() - started
                metrics = client.get("/_sw/metrics").text
        decisions = asyncio.run(_count_decisions(store_url))
        _report(served, originals, sent, clicks, elapsed, metrics, decisions, policies)
        from slotwise.proxy.cli.demo_shop import run_storefront

        if not run_storefront(Path(tmp), env):
            return EXIT_FAILED
    if args.learn_impressions != 0:
        _learning(args.learn_impressions, args.seed)
    _next_steps(policies)
    return 0


def _learning(impressions: int | None, seed: int) -> None:
    """The default simulator scenario, condensed: CTR over time and the lift by segment."""
    from slotwise.lab.scenario import load_scenario
    from slotwise.lab.sim_report import summary
    from slotwise.lab.simulate import simulate

    path = EXAMPLES / "scenarios" / "segment-winners.toml"
    scenario = load_scenario(path)
    impressions = impressions or scenario.impressions
    print(
        f"\nLearning: {impressions:,} simulated impressions ({scenario.description}, "
        f"{_shown(path)})\nthrough the real decision path: rules, bandit, holdout, reward join, "
        "learner, model store.\n"
    )
    started = time.perf_counter()
    data = summary(scenario, simulate(scenario, impressions=impressions, seed=seed))
    elapsed = time.perf_counter() - started
    windows = data["windows"]
    step = max(1, len(windows) // 6)
    print(f"  {'impressions':>11}  {'personalised CTR':>16}  {'control CTR':>11}  {'of oracle':>9}")
    for window in windows[step - 1 :: step]:
        print(
            f"  {window['end']:>11,}  {window['personalised']['ctr']:>16.3f}"
            f"  {window['control']['ctr']:>11.3f}  {window['oracle_share']:>9.0%}"
        )
    print(f"\n  {'segment':<16} {'personalised':>12} {'control':>8} {'CTR lift (95% CI)':>28}")
    for name, segment in data["segments"].items():
        lift = segment["ctr_lift"]
        print(
            f"  {name:<16} {segment['personalised']['ctr']:>12.3f}"
            f" {segment['control']['ctr']:>8.3f}"
            f"   {lift['value']:+.3f} ({lift['low']:+.3f} .. {lift['high']:+.3f})"
        )
    final = data["final"]
    print(
        f"\n  last 5,000 impressions: {final['oracle_share']:.0%} of the best possible CTR, "
        f"{final['control_multiple']:.1f}x the control's ({elapsed:.1f}s); "
        "the full run: slotwise simulate"
    )


def _default_policies() -> Path:
    shared = REPO / "policies"
    if shared.is_dir() and any(shared.rglob("*.sw")):
        return shared
    return EXAMPLES / "adserver" / "policies"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _users(per_segment: int) -> list[tuple[Segment, str]]:
    return [(seg, f"demo-{i}-{n}") for i, seg in enumerate(SEGMENTS) for n in range(per_segment)]


def _import_profiles(client: Any, users: list[tuple[Segment, str]], admin_token: str) -> None:
    """The site's CRM traits (user.age, user.segments) through the admin profile API."""
    auth = {"authorization": f"Bearer {admin_token}"}
    for segment, user in users:
        if segment.consent:
            profile = {"age": segment.age, "segments": list(segment.segments), "visits": 3}
            response = client.put(f"/_sw/admin/profiles/{user}", json=profile, headers=auth)
            response.raise_for_status()


async def _count_decisions(store_url: str) -> int:
    from slotwise.proxy.state import open_store

    async with open_store(store_url) as store:
        return await store.log_length("decisions")


def _traffic(
    client: Any, users: list[tuple[Segment, str]], requests: int, rng: random.Random
) -> tuple[dict[str, Served], int, int]:
    served: dict[str, Served] = {seg.name: Served() for seg in SEGMENTS}
    sent = clicks = 0
    for _ in range(requests):
        for segment, user in users:
            consent = "personal" if segment.consent else "denied"
            headers = {
                "user-agent": segment.user_agent,
                "cf-ipcountry": segment.country,
                "cookie": f"sw_uid={user}; sw_consent={consent}",
            }
            out = served[segment.name]
            ad = client.get("/ads/home-top", headers=headers).json()
            creative = ad["creative"]
            out.add("JSON headline", creative["headline"])
            out.add("JSON call to action", creative["cta"])
            bid = client.post("/openrtb/bid", json=_bid_request(user), headers=headers).json()
            native = json.loads(bid["seatbid"][0]["bid"][0]["adm"])["native"]
            out.add("native title", _native_title(native))
            video = ET.fromstring(client.get("/vast/preroll", headers=headers).content)
            out.add("VAST title", _vast_text(video, "v:Ad/v:InLine/v:AdTitle"))
            out.add("VAST media file", _vast_text(video, ".//v:MediaFile"))
            sent += 3
            for url in ad["tracking"]["impressions"][1:]:  # the proxy's own pixel
                client.get(url.split(str(client.base_url), 1)[-1])
            if creative["click_url"].startswith(str(client.base_url)) and rng.random() < 0.2:
                click = client.get(creative["click_url"].split(str(client.base_url), 1)[-1])
                clicks += click.status_code == 302
    return served, sent, clicks


def _originals(ad_server: str) -> dict[str, set[str]]:
    """What the ad server itself serves, asked directly (to mark unchanged answers)."""
    import httpx

    with httpx.Client(base_url=ad_server, timeout=10.0) as direct:
        ad = direct.get("/ads/home-top").json()["creative"]
        bid = direct.post("/openrtb/bid", json=_bid_request("direct")).json()
        native = json.loads(bid["seatbid"][0]["bid"][0]["adm"])["native"]
        video = ET.fromstring(direct.get("/vast/preroll").content)
    return {
        "JSON headline": {ad["headline"]},
        "JSON call to action": {ad["cta"]},
        "native title": {_native_title(native) or ""},
        "VAST title": {_vast_text(video, "v:Ad/v:InLine/v:AdTitle")},
        "VAST media file": {_vast_text(video, ".//v:MediaFile")},
    }


def _vast_text(root: ET.Element, path: str) -> str:
    return (root.findtext(path, namespaces=_VAST_NS) or "").strip()


def _bid_request(user: str) -> dict[str, Any]:
    native = {"ver": "1.2", "assets": _NATIVE_ASSETS}
    return {
        "id": f"bid-{user}",
        "imp": [
            {
                "id": "1",
                "tagid": "feed-native",
                "native": {"request": json.dumps(native), "ver": "1.2"},
            }
        ],
        "site": {"page": "https://publisher.example/article"},
        "user": {"id": user},
    }


def _native_title(native: dict[str, Any]) -> str | None:
    for asset in native.get("assets", []):
        if "title" in asset:
            return str(asset["title"].get("text"))
    return None


def _report(
    served: dict[str, Served],
    originals: dict[str, set[str]],
    sent: int,
    clicks: int,
    elapsed: float,
    metrics: str,
    decisions: int,
    policies: Path,
) -> None:
    print("What each segment was served (share of its requests; '= ad server' is what the ad")
    print("server sends itself: a holdout, or a variant equal to the original):\n")
    for segment, what in served.items():
        print(segment)
        for slot, counts in what.counts.items():
            total = sum(counts.values())
            shares = ", ".join(
                f"{value!r}{' (= ad server)' if value in originals.get(slot, ()) else ''} "
                f"{n * 100 // total}%"
                for value, n in counts.most_common(3)
            )
            print(f"  {slot:<20} {shares}")
        print()
    wanted = ("slotwise_decisions_total", "slotwise_holdout_total", "slotwise_fail_open_total")
    lines = [m for m in metrics.splitlines() if m.startswith(wanted)]
    print(
        f"{sent} ad requests through the proxy in {elapsed:.1f}s; "
        f"{clicks} signed clicks redirected; {decisions} decisions in the log."
    )
    for line in lines:
        print(f"  {line}")


def _next_steps(policies: Path) -> None:
    print(
        "\nWhere to look next:\n"
        f"  the policies that made these choices   {_shown(policies)}\n"
        "  run it in front of your own server    slotwise serve --upstream http://adserver:8000 "
        "--policies policies/\n"
        "  live numbers                          curl http://127.0.0.1:8080/_sw/metrics\n"
        "  operators' guide                      docs/proxy.md\n"
        "  how the bandit learns                 docs/learning.md"
    )


@contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        # run from the log's folder (a temporary one): nothing is read relative to here
        process = subprocess.Popen(
            argv, cwd=log.parent, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(base: str, proxy: subprocess.Popen[bytes], log: Path) -> bool:
    import httpx

    # a slow or busy machine takes a while to start the workers; a proxy that exits is seen
    # at once, so the wait is long only for a start that is merely slow
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            break
        try:
            if httpx.get(f"{base}/_sw/ready", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    print("slotwise demo: the proxy did not become ready:", file=sys.stderr)
    print(log.read_text(errors="replace")[-2000:], file=sys.stderr)
    return False
