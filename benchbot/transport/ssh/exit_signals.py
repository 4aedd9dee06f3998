"""paramiko ignores `exit-signal`; this records it, so a remote crash reads as -SIGSEGV and not as unknown."""

from __future__ import annotations

import paramiko
from paramiko.common import MSG_CHANNEL_REQUEST


def track_exit_signals(transport: paramiko.Transport | None, store: dict[int, str]) -> None:
    """Record `exit-signal` requests, which paramiko ignores, so a crash reads as -SIGSEGV and not -1.

    Uses paramiko's per-transport dispatch table; if that ever changes, signals show as returncode None.
    """
    table = getattr(transport, "_channel_handler_table", None)
    if transport is None or not isinstance(table, dict) or MSG_CHANNEL_REQUEST not in table:
        return
    base = table[MSG_CHANNEL_REQUEST]

    def handle(chan: paramiko.Channel, m: paramiko.Message) -> None:
        try:
            peek = paramiko.Message(m.get_remainder())
            if peek.get_text() == "exit-signal":
                peek.get_boolean()
                store[chan.get_id()] = peek.get_text()
        except Exception:  # noqa: BLE001 - never break paramiko's own handling
            pass
        base(chan, m)

    table = dict(table)
    table[MSG_CHANNEL_REQUEST] = handle
    setattr(transport, "_channel_handler_table", table)  # noqa: B010 - instance attribute: this connection only

