"""What ``slotwise simulate`` prints: per-window CTRs, lift by segment, acceptance checks.

Lift is personalised CTR minus control CTR (control = the holdout group, served the upstream
creative) with a 95% normal interval; "no false lift" means the interval of a no-effect
scenario contains zero. The oracle share uses expected CTRs from the scenario's truth (what
was served vs each user's best), which are far less noisy than observed clicks.
"""

from __future__ import annotations

from typing import Any

from slotwise.lab.scenario import Scenario
from slotwise.lab.simulate import GREEDY_SAMPLE, SimulationResult, Tally, lift_interval

ORACLE_TARGET = 0.9
CONTROL_MULTIPLE = 2.0
P99_TARGET_US = 1000.0
LEARN_TARGET = 5000.0
FINAL_WINDOWS = 5  # the acceptance reads the last 5,000 impressions (5 windows of 1,000)


def summary(scenario: Scenario, result: SimulationResult) -> dict[str, Any]:
    """Every figure the report shows, as plain data (``--format json``)."""
    personalised, control = result.totals()
    final_personalised, final_control = result.totals(last=FINAL_WINDOWS)
    diff, low, high = lift_interval(personalised, control)
    final_share = (
        final_personalised.expected_ctr / final_personalised.oracle_ctr
        if final_personalised.oracle_ctr
        else 0.0
    )
    control_expected = final_control.rate(final_control.expected_ctr) or _mean_expected(control)
    multiple = final_personalised.rate(final_personalised.expected_ctr) / control_expected
    segments = {}
    for name, (seg_personalised, seg_control) in result.segments.items():
        seg_diff, seg_low, seg_high = lift_interval(seg_personalised, seg_control)
        segments[name] = {
            "personalised": seg_personalised.as_dict(),
            "control": seg_control.as_dict(),
            "ctr_lift": {"value": seg_diff, "low": seg_low, "high": seg_high},
        }
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "impressions": sum(
            w.personalised.impressions + w.control.impressions for w in result.windows
        ),
        "combinations": scenario.campaign.combinations,
        "explore": f"{scenario.campaign.explore.kind} {scenario.campaign.explore.parameter:g}",
        "windows": [
            {
                "end": w.end,
                "personalised": w.personalised.as_dict(),
                "control": w.control.as_dict(),
                "oracle_share": w.oracle_share,
            }
            for w in result.windows
        ],
        "totals": {"personalised": personalised.as_dict(), "control": control.as_dict()},
        "ctr_lift": {"value": diff, "low": low, "high": high},
        "final": {
            "oracle_share": final_share,
            "expected_ctr": final_personalised.rate(final_personalised.expected_ctr),
            "control_expected_ctr": control_expected,
            "control_multiple": multiple,
        },
        "greedy": {"oracle_share": result.greedy_share, "by_segment": result.greedy_by_segment},
        "oracle_share_reached_at": {
            str(share): result.reached_oracle_share(share) for share in (0.8, 0.85, 0.9)
        },
        "segments": segments,
        "engine_us": {
            "p50": result.percentile_us(0.5),
            "p99": result.percentile_us(0.99),
            "cpu_p50": result.percentile_us(0.5, cpu=True),
            "cpu_p99": result.percentile_us(0.99, cpu=True),
        },
        "learning": {
            "examples": result.learned,
            "examples_per_second": result.learn_rate,
            "models_published": result.models_published,
        },
    }


def _mean_expected(tally: Tally) -> float:
    return tally.rate(tally.expected_ctr) or 1e-12


def render_text(data: dict[str, Any], effect: bool) -> str:
    """The human report: a table per window, lift by segment, then the checks."""
    lines = [
        f"scenario {data['scenario']}: {data['description']}",
        f"{data['combinations']} combinations, explore {data['explore']},"
        f" {data['impressions']} impressions",
        "",
        f"{'impressions':>11}  {'pers CTR':>8}  {'expected':>8}  {'control':>8}"
        f"  {'conv/1k':>7}  {'oracle':>7}  {'share':>6}",
    ]
    for window in data["windows"]:
        p, c = window["personalised"], window["control"]
        lines.append(
            f"{window['end']:>11}  {p['ctr']:>8.4f}  {p['expected_ctr']:>8.4f}  {c['ctr']:>8.4f}"
            f"  {1000 * p['conversion_rate']:>7.1f}  {p['oracle_ctr']:>7.4f}"
            f"  {window['oracle_share']:>6.1%}"
        )
    lift = data["ctr_lift"]
    lines += [
        "",
        f"CTR lift over control, all impressions: {lift['value']:+.4f}"
        f" (95% CI {lift['low']:+.4f} .. {lift['high']:+.4f})",
        "",
        f"{'segment':<16} {'pers CTR':>8} {'control':>8} {'lift':>8}  95% CI",
    ]
    for name, segment in data["segments"].items():
        seg_lift = segment["ctr_lift"]
        lines.append(
            f"{name:<16} {segment['personalised']['ctr']:>8.4f}"
            f" {segment['control']['ctr']:>8.4f} {seg_lift['value']:>+8.4f}"
            f"  {seg_lift['low']:+.4f} .. {seg_lift['high']:+.4f}"
        )
    final, engine, learning = data["final"], data["engine_us"], data["learning"]
    lines += [
        "",
        f"last {FINAL_WINDOWS} windows: {final['oracle_share']:.1%} of the oracle's CTR,"
        f" {final['control_multiple']:.2f}x the control's (expected CTRs)",
        f"the final model without exploring (its most probable variants, {GREEDY_SAMPLE:,}"
        f" users): {data['greedy']['oracle_share']:.1%} of the oracle's CTR ("
        + ", ".join(f"{k} {v:.0%}" for k, v in data["greedy"]["by_segment"].items())
        + ")",
        "oracle share reached (and kept) at: "
        + ", ".join(
            f"{k}: {v if v is not None else 'not reached'}"
            for k, v in data["oracle_share_reached_at"].items()
        ),
        f"engine time per decision: p50 {engine['p50']:.0f} us, p99 {engine['p99']:.0f} us wall;"
        f" p50 {engine['cpu_p50']:.0f} us, p99 {engine['cpu_p99']:.0f} us CPU",
        f"learning: {learning['examples']} joined examples at"
        f" {learning['examples_per_second']:.0f}/s (CPU), {learning['models_published']}"
        " models published",
        "",
    ]
    lines += [f"[{'ok' if ok else 'MISS'}] {text}" for ok, text in checks(data, effect)]
    return "\n".join(lines)


def checks(data: dict[str, Any], effect: bool) -> list[tuple[bool, str]]:
    """The acceptance criteria of the learning loop, as (met, description)."""
    final, engine, learning = data["final"], data["engine_us"], data["learning"]
    lift = data["ctr_lift"]
    result = [
        (engine["cpu_p99"] <= P99_TARGET_US, f"engine p99 <= {P99_TARGET_US:.0f} us (CPU)"),
        (
            learning["examples_per_second"] >= LEARN_TARGET,
            f"learning >= {LEARN_TARGET:.0f} joined examples/s",
        ),
    ]
    if effect:
        result += [
            (
                final["oracle_share"] >= ORACLE_TARGET,
                f"personalised CTR >= {ORACLE_TARGET:.0%} of the oracle's"
                f" ({final['oracle_share']:.1%})",
            ),
            (
                final["control_multiple"] >= CONTROL_MULTIPLE,
                f"personalised CTR >= {CONTROL_MULTIPLE:g}x control"
                f" ({final['control_multiple']:.2f}x)",
            ),
        ]
    else:
        result.append(
            (lift["low"] <= 0.0 <= lift["high"], "no lift beyond the confidence interval")
        )
    return result
