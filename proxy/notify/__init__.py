"""Notifications a trigger sends (``notify email|webhook ...``): the outbox and its senders.

The trigger engine (slotwise.proxy.triggers) decides that a notification is due and puts it in
the outbox with :func:`~slotwise.proxy.notify.outbox.enqueue`; the sender delivers it through its
channel. The two meet only at :class:`~slotwise.proxy.notify.outbox.Notification`.
"""
