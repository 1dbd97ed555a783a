"""Why each trigger does or does not fire for one user, from the store (``slotwise explain
--user ID``): the user's history, profile and cart, evaluated by the engine's own rules."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from slotwise.proxy.state import Store
from slotwise.proxy.triggers.engine import evaluate_states, read_user
from slotwise.proxy.triggers.state import ARMED, CANCELLED, EXPIRED, WAITING

if TYPE_CHECKING:
    from slotwise.dsl.compiled import CompiledPolicySet, CompiledTrigger
    from slotwise.proxy.triggers.state import TriggerState

_HISTORY_SECONDS = 30 * 86_400.0


def _at(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


async def explain_user(
    store: Store, policy: CompiledPolicySet, subject: str, now: float
) -> dict[str, Any]:
    """``{"user_id", "erased", "triggers": [{trigger, phase, fires, why, ...}]}``."""
    from slotwise.proxy.events.erasure import erased_key

    if await store.get(erased_key(subject)) is not None:
        return {"user_id": subject, "erased": True, "triggers": []}
    user = await read_user(store, subject, now, _HISTORY_SECONDS)
    states = dict(evaluate_states(policy, user.context))
    stored = user.record.states if user.record is not None else {}
    out = []
    for trigger in policy.triggers:
        state = states.get(trigger)
        notification = stored[trigger.name].notification if trigger.name in stored else None
        out.append(_one(trigger, state, now, notification))
    return {"user_id": subject, "erased": False, "triggers": out}


def _one(
    trigger: CompiledTrigger, state: TriggerState | None, now: float, notification: str | None
) -> dict[str, Any]:
    if state is None:
        return {
            "trigger": trigger.name, "phase": "none", "fires": False,
            "why": f"no `{trigger.on_event}` event in the user's history (consented events only)",
        }  # fmt: skip
    phase = state.phase(now)
    if phase == CANCELLED:
        assert state.cancelled_at is not None
        why = (
            f"cancelled: `{trigger.unless_event}` at {_at(state.cancelled_at)}, within "
            f"{_span(trigger.unless_within)} of the `{trigger.on_event}` event"
        )
    elif phase == EXPIRED:
        why = f"expired at {_at(state.until)} (window {_span(trigger.window)})"
    elif phase == WAITING:
        why = f"waiting: armed at {_at(state.armed_at)} (wait {_span(trigger.wait)})"
    elif not state.when:
        why = "armed, but its `when` does not hold on the user's stored signals"
    else:
        shows = f"shows campaign {trigger.show_campaign}" if trigger.show_campaign else "armed"
        why = f"fires: {shows} on the next request it applies to, until {_at(state.until)}"
    fires = phase == ARMED and state.when
    document: dict[str, Any] = {
        "trigger": trigger.name, "phase": phase, "fires": fires, "why": why,
        "started": state.started, "armed_at": state.armed_at, "until": state.until,
        "cancelled_at": state.cancelled_at, "when": state.when,
    }  # fmt: skip
    if notification is not None:
        document["notification"] = notification
    return document


def render_text(explained: dict[str, Any]) -> str:
    lines = [f"user {explained['user_id']}"]
    if explained["erased"]:
        return lines[0] + ": erased (nothing of theirs is kept or used)"
    for state in explained["triggers"]:
        lines.append(f"  trigger {state['trigger']}: {state['phase']}: {state['why']}")
    if not explained["triggers"]:
        lines.append("  the policy has no triggers")
    return "\n".join(lines)
