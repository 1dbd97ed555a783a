"""The worker's own probe request: how long a request waits before this worker starts it.

Under overload most requests wait outside the worker's event loop: in the kernel's socket
buffers and in the HTTP server's I/O thread, which needs a CPU and the interpreter lock to
hand each one over (docs/benchmarks.md, "Hardening"). Nothing inside the worker sees that
queue: the loop's lag stays at a few milliseconds and the work in flight under 2 while 500
requests wait. A request sent to the worker's own port does see it: it waits in the same
kernel buffers, the same I/O thread and the same ready queue as every other request, and the
worker knows when it sent it. So each worker keeps one keep-alive connection to its own port
and sends a probe over it every ``EVERY`` seconds (one at a time) while it takes requests (an
idle worker has no queue: it sends none); the probe's handler, on this worker, reads the time
it waited (``Admission.probed``).

With several workers on one listening socket a connection can be taken by another worker:
the probe carries a random token of this worker's, another worker answers 404, and the
connection is made again until this worker holds it (at start-up every worker is idle, so
a few tries). The token also keeps anyone else from feeding the controller: a probe without
it is an unknown path (404).
"""

from __future__ import annotations

import asyncio
import secrets

from slotwise.proxy.admission import Admission

PATH = "/_sw/queue-probe"
HEADER = b"x-slotwise-probe"
EVERY = 0.02  # seconds between one probe's answer and the next probe
_TRIES = 64  # connections made in a row before waiting (another worker kept taking them)
_BACKOFF = (0.1, 5.0)  # seconds before connecting again: first, at most


def new_token() -> bytes:
    return secrets.token_hex(16).encode("ascii")


async def run(admission: Admission, host: str, port: int) -> None:
    """Probe this worker for ever (cancelled with the app); ``host`` is the address the
    server listens on (an unspecified one is reached on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    assert admission.token is not None
    request = b"GET %s HTTP/1.1\r\nhost: probe\r\n%s: %s\r\n\r\n" % (
        PATH.encode("ascii"),
        HEADER,
        admission.token,
    )
    pause = _BACKOFF[0]
    tries = 0
    while True:
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection(host, port)
            while True:
                admission.sending_probe()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                admission.probe_sent = 0.0
                if not head.startswith(b"HTTP/1.1 204"):  # another worker's connection
                    break
                tries, pause = 0, _BACKOFF[0]
                await asyncio.sleep(EVERY)
                # no request taken since: no queue to measure (an idle worker sends none)
                while admission.taken == admission.probe_behind:
                    admission.observe(0.0)
                    await asyncio.sleep(EVERY)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            tries = _TRIES  # not listening (yet), or gone: wait before the next try
        finally:
            admission.probe_sent = 0.0
            if writer is not None:
                writer.close()
        tries += 1
        if tries >= _TRIES:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _BACKOFF[1])
            tries = 0
