"""The differential test's driver: replay recorded traffic through the proxy, normalise answers.

Shared by the recorder (``scripts/differential_record.py``, which runs it against an older tree
and loads this file by its path) and the test (tests/proxy/test_differential.py, against this
tree), so both sides drive the proxy and normalise its answers the same way. It uses only the
proxy's stable surface: ``ProxyApp``, ``load_settings`` from ``SLOTWISE_*`` variables, the rule
chooser with a seeded RNG, the admin profile API and the store's decision log.

A phase is one proxy with one policy set: its policy files, the user profiles to import and the
requests, each with the upstream's answer to it (served by a loopback server that finds the
answer by the ``x-replay`` request header, so the upstream needs no logic of its own).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

ADMIN_TOKEN = "differential-admin-token"
REPLAY_HEADER = "x-replay"
# the built-ins of the recorded tree (ab51ee5); the bid-request providers came later (issue 15)
PROVIDERS = ("consent", "request", "device", "geo", "time", "profile")
# decision ids and click signatures are random per run; everything else must match
_SIGNATURE = re.compile(r"([?&]s=)[A-Za-z0-9_-]+")


def encode_body(body: bytes) -> dict[str, str]:
    try:
        return {"text": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(body).decode("ascii")}


def decode_body(encoded: Mapping[str, str]) -> bytes:
    if "text" in encoded:
        return encoded["text"].encode("utf-8")
    return base64.b64decode(encoded["b64"])


async def drive(phase: Mapping[str, Any]) -> dict[str, Any]:
    """Send the phase's requests one at a time; the normalised answers, records and counters."""
    requests = phase["requests"]
    selection = os.environ.get("SLOTWISE_PLUGINS")
    # exactly the recorded tree's providers: any other (an installed third-party provider, a
    # later built-in) would add signals to the records
    os.environ["SLOTWISE_PLUGINS"] = ",".join(PROVIDERS)
    try:
        return await _drive(phase, requests)
    finally:
        if selection is None:
            del os.environ["SLOTWISE_PLUGINS"]
        else:
            os.environ["SLOTWISE_PLUGINS"] = selection


async def _drive(phase: Mapping[str, Any], requests: list[Any]) -> dict[str, Any]:
    from slotwise.proxy.app import ProxyApp
    from slotwise.proxy.chooser import RuleChooser
    from slotwise.proxy.config import load_settings

    async with _upstream(requests) as port:
        with tempfile.TemporaryDirectory(prefix="slotwise-differential-") as tmp:
            for name, text in phase["policies"].items():
                (Path(tmp) / name).write_text(text, encoding="utf-8")
            environ = {
                "SLOTWISE_UPSTREAM_URL": f"http://127.0.0.1:{port}",
                "SLOTWISE_PROXY_POLICIES": tmp,
                "SLOTWISE_PROXY_RELOAD_INTERVAL": "0",
                # a loaded machine must not turn a decision into a fail-open, nor lose a signal
                "SLOTWISE_PROXY_DECISION_DEADLINE_MS": "60000",
                "SLOTWISE_PROXY_SIGNALS_DEADLINE_MS": "60000",
                "SLOTWISE_STORE_URL": "memory://",
                "SLOTWISE_TRACKING_SECRET": "differential-secret-0123456789",
                "SLOTWISE_TRACKING_PUBLIC_URL": "https://proxy.example",
                "SLOTWISE_ADMIN_TOKEN": ADMIN_TOKEN,
                # every provider answers, however slow the machine (10 s is the most allowed)
                "SLOTWISE_PLUGINS_CONFIG": json.dumps(
                    {name: {"deadline_ms": 10_000} for name in PROVIDERS}
                ),
            }
            app = ProxyApp(
                load_settings(environ=environ), chooser=RuleChooser(random.Random(phase["seed"]))
            )
            async with _running(app) as client:
                for user, profile in phase["profiles"].items():
                    response = await client.put(
                        f"/_sw/admin/profiles/{user}",
                        json=profile,
                        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                    )
                    response.raise_for_status()
                cursor = ["0"]  # the decision log's position after the previous request
                answers = [
                    await _one(app.runtime, client, cursor, i, r) for i, r in enumerate(requests)
                ]
                metrics = app.metrics
                counters = {
                    name: dict(sorted(getattr(metrics, name).values.items()))
                    for name in ("decisions", "holdouts", "fail_opens", "passthrough")
                }
    return {"answers": answers, "counters": counters}


def _record_json(data: bytes) -> Any:
    """A decisions-log entry as its JSON object (the tree recorded wrote JSON; this one
    stores the compact form of slotwise.proxy.decision_codec)."""
    try:
        from slotwise.proxy.decision_codec import decode_stored
        from slotwise.proxy.decision_log import encode_record
    except ImportError:  # a tree before the compact form
        return json.loads(data)
    return json.loads(encode_record(decode_stored(data)))


async def _one(
    runtime: Any, client: httpx.AsyncClient, cursor: list[str], index: int, request: Any
) -> dict[str, Any]:
    headers = [(k, v) for k, v in request["headers"]] + [(REPLAY_HEADER, str(index))]
    response = await client.request(
        request["method"], request["path"], headers=headers, content=decode_body(request["body"])
    )
    await runtime.engine.decision_log.flush()
    entries = await runtime.store.log_read("decisions", after=cursor[0], count=10_000)
    if entries:
        cursor[0] = entries[-1].position
    records = [(_record_json(e.data), e.subject) for e in entries]
    return normalise(response.status_code, response.headers.raw, response.content, records)


# decision record fields added after the expectations were recorded (null when unused)
_ADDED_SINCE_RECORDING = ("trigger", "trigger_offer", "offer")


def normalise(
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    records: list[tuple[dict[str, Any], str | None]],
) -> dict[str, Any]:
    """One answer with its decision ids numbered in order; signatures, times, clocks and the
    policy version (it hashes the temporary directory's name) out."""
    names: dict[str, str] = {}
    out = []
    for record, subject in records:
        names.setdefault(record["id"], f"decision-{len(names)}")
        record = dict(record)
        record["id"] = names[record["id"]]
        record.pop("ts", None)
        record["policy_version"] = "policy"  # a hash of the policy files' paths and texts
        # time.* signals come from the wall clock: the hour, the weekday of the run
        signals = record.get("signals") or {}
        record["signals"] = {k: v for k, v in signals.items() if not k.startswith("time.")}
        for added in _ADDED_SINCE_RECORDING:  # optional fields, null unless they apply
            if record.get(added, ...) is None:
                del record[added]
        if record.get("removed", 0) == {}:  # offer sets' removed arms (issue 17), when none
            del record["removed"]
        out.append({"record": record, "subject": subject})
    text = body.decode("utf-8", "surrogateescape")
    for decision_id, name in names.items():
        text = text.replace(decision_id, name)
    text = _SIGNATURE.sub(r"\1SIGNATURE", text)
    fields = [[k.decode("latin-1").lower(), v.decode("latin-1")] for k, v in headers]
    if any(name == "content-encoding" for name, _ in fields):
        # ``body`` is decoded (httpx undoes the coding); the compressed length varies with the ids
        fields = [[n, "(compressed)" if n == "content-length" else v] for n, v in fields]
    return {
        "status": status,
        "headers": fields,
        "body": text,
        "records": out,
    }


@asynccontextmanager
async def _running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


@asynccontextmanager
async def _upstream(requests: list[Any]) -> AsyncIterator[int]:
    """A loopback HTTP/1.1 server answering request ``x-replay: N`` with the N-th answer."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                fields = dict(
                    (n.strip().lower(), v.strip())
                    for n, _, v in (line.partition(":") for line in head.split("\r\n")[1:])
                    if n
                )
                await reader.readexactly(int(fields.get("content-length", "0")))
                answer = requests[int(fields[REPLAY_HEADER])]["upstream"]
                body = decode_body(answer["body"])
                lines = [f"HTTP/1.1 {answer['status']} X"]
                lines += [f"{n}: {v}" for n, v in answer["headers"]]
                lines.append(f"Content-Length: {len(body)}")
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
