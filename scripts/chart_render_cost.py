"""CPU time of rendering the HTML report's page with pygal's charts against the hand-drawn
SVG charts they replaced (docs/benchmarks.md, "Reports, dashboard and guardrails").

The old ``proxy/report/svg.py`` and ``html.py`` are taken from git (``--baseline``, the last
commit that had them) into a temporary folder; both render the same report in interleaved
rounds; medians of CPU time. The report: ``--json`` (a ``slotwise report --format json``
output), else the report of the tests' generated logs (tests/proxy/report/logs.py, segments
by device type: one campaign, four charts).

    .venv/bin/python scripts/chart_render_cost.py [--json report.json] [--rounds 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import msgspec  # noqa: E402

from slotwise.proxy.report.document import Report  # noqa: E402
from slotwise.proxy.report.html import render  # noqa: E402


def _generated(folder: Path) -> bytes:
    from tests.proxy.report.logs import make_logs, write_files

    logs = write_files(make_logs(), folder)
    return subprocess.run(
        [sys.executable, "-m", "slotwise", "report", *map(str, logs), "--segment-by",
         "device.type", "--format", "json"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--baseline", default="a2d98bb")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = args.json.read_bytes() if args.json else _generated(Path(folder))
        report = msgspec.json.decode(data, type=Report)
        for name, module in (("svg.py", "oldsvg.py"), ("html.py", "oldhtml.py")):
            text = subprocess.run(
                ["git", "show", f"{args.baseline}:proxy/report/{name}"],
                cwd=REPO, capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            text = text.replace("from slotwise.proxy.report import svg", "import oldsvg as svg")
            (Path(folder) / module).write_text(text)
        sys.path.insert(0, folder)
        from oldhtml import render as old  # type: ignore[import-not-found]

        charts = render(report).count("data-chart=")
        times: dict[str, list[float]] = {"hand-drawn": [], "pygal": []}
        for _ in range(args.rounds):
            for name, draw in (("hand-drawn", old), ("pygal", render)):
                started = time.process_time()
                draw(report)
                times[name].append(time.process_time() - started)
    median = {k: sorted(v)[len(v) // 2] * 1000 for k, v in times.items()}
    print(
        f"{charts} charts; median CPU ms per page over {args.rounds} interleaved rounds:"
        f" hand-drawn {median['hand-drawn']:.2f}, pygal {median['pygal']:.2f}"
        f" ({median['pygal'] / charts:.2f} per chart), ratio"
        f" {median['pygal'] / median['hand-drawn']:.0f}x"
    )


if __name__ == "__main__":
    main()
