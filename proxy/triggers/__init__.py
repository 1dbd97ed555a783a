"""Behavioural triggers at run time: per-user state from events, serving, notifications.

- :mod:`.state`: a trigger's state as a pure function of the user's event history, and the
  stored per-user record (``subject_key(user, "triggers")``);
- :mod:`.engine`: :class:`TriggerEngine`, driven by every accepted personal event, and
  :func:`still_due`, which the notification sender calls before sending;
- :mod:`.audiences`: the users currently in a trigger state.

Serving is the triggered-campaigns step, slotwise.proxy.personalisers.triggered.
"""

from slotwise.proxy.triggers.engine import TriggerEngine, still_due
from slotwise.proxy.triggers.state import TriggerRecord, TriggerState

__all__ = ["TriggerEngine", "TriggerRecord", "TriggerState", "still_due"]
