"""Guardrails: a campaign whose personalisation significantly harms its goal against its
control group is served generic to everyone until a person re-enables it (docs/reports.md).

- ``sequential``: the always-valid test (an mSPRT confidence sequence) over the two arms;
- ``monitor``: per-campaign arm statistics from joined decisions, and the verdicts;
- ``state``: the revert set in the store, and the snapshot each proxy refreshes from it;
- ``alert``: the webhook, the log line and the metric of a revert.
"""
