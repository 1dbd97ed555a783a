"""Real receivers for notification tests: a webhook endpoint that verifies Standard Webhooks
signatures as a receiver would (its own verification, written from the specification, not
slotwise's) and deduplicates by webhook-id, with faults on demand; an SMTP server (aiosmtpd)
with STARTTLS and authentication, under a certificate made for the test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from slotwise.proxy.loopback import free_port
from tests.support.servers import require_binary

# what the receiver does with an attempt: "ok", an HTTP status, "timeout" (answers after
# 10 s), "drop" (closes the connection without an answer)
Fault = Callable[[str, int], "str | int"]


def new_secret() -> str:
    return (
        "whsec_" + base64.b64encode(hashlib.sha256(str(time.time_ns()).encode()).digest()).decode()
    )


def receiver_verifies(secret: str, headers: dict[str, str], body: bytes, now: float) -> bool:
    """Standard Webhooks verification, step by step as the specification describes it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, stamp = headers.get("webhook-id"), headers.get("webhook-timestamp")
    if not msg_id or not stamp or abs(now - int(stamp)) > 300:
        return False
    content = msg_id.encode() + b"." + stamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for item in headers.get("webhook-signature", "").split(" "):
        version, _, signature = item.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


@dataclass
class Delivery:
    id: str
    body: dict[str, Any]
    verified: bool
    at: float


@dataclass
class WebhookReceiver:
    port: int
    secret: str
    fault: Fault = lambda msg_id, attempt: "ok"  # noqa: E731
    attempts: dict[str, int] = field(default_factory=dict)  # webhook-id -> requests seen
    accepted: dict[str, Delivery] = field(default_factory=dict)  # first accepted, by id
    duplicates: int = 0  # accepted again after the first (a receiver drops them by id)
    rejected: int = 0  # bad signatures
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.accepted) < count and time.monotonic() < deadline:
            time.sleep(0.05)


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            msg_id = headers.get("webhook-id", "")
            with receiver.lock:
                attempt = receiver.attempts[msg_id] = receiver.attempts.get(msg_id, 0) + 1
            action = receiver.fault(msg_id, attempt)
            if action == "drop":
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if action == "timeout":
                time.sleep(10)
                action = 200
            status = 200 if action == "ok" else int(action)
            if status == 200:
                verified = receiver_verifies(receiver.secret, headers, body, time.time())
                with receiver.lock:
                    if not verified:
                        receiver.rejected += 1
                        status = 401
                    elif msg_id in receiver.accepted:
                        receiver.duplicates += 1
                    else:
                        receiver.accepted[msg_id] = Delivery(
                            msg_id, json.loads(body), True, time.time()
                        )
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

    return Handler


@contextmanager
def webhook_receiver(
    secret: str | None = None, fault: Fault | None = None
) -> Iterator[WebhookReceiver]:
    port = free_port()
    receiver = WebhookReceiver(port, secret or new_secret())
    if fault is not None:
        receiver.fault = fault
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


# -- SMTP --------------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    port: int
    ca_file: Path
    username: str
    password: str
    messages: list[Message] = field(default_factory=list)
    refuse_rcpt: set[str] = field(default_factory=set)  # addresses answered 550
    defer_data: int = 0  # DATA commands answered 451 before accepting
    logins: int = 0

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.sink.refuse_rcpt:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.defer_data > 0:
            self.sink.defer_data -= 1
            return "451 4.3.0 try again later"
        self.sink.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and localhost), made with openssl."""
    openssl = require_binary("openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@contextmanager
def smtp_server(directory: Path, *, implicit_tls: bool = False) -> Iterator[SmtpSink]:
    """aiosmtpd on a free port: STARTTLS required (or TLS from the first byte with
    ``implicit_tls``), AUTH required (user ``mailer``)."""
    cert, key = make_certificate(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = SmtpSink(free_port(), cert, "mailer", "s3cret-pass")

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == sink.username
            and data.password.decode() == sink.password
        )
        if ok:
            sink.logins += 1
        return AuthResult(success=ok)

    tls: dict[str, Any] = (
        # aiosmtpd does not count a TLS listening socket as TLS for AUTH (it is, from the
        # first byte), and warns when AUTH is required without it: offered, not required
        {"ssl_context": context, "auth_require_tls": False, "auth_required": False}
        if implicit_tls
        else {"tls_context": context, "require_starttls": True, "auth_required": True}
    )
    controller = Controller(
        _SinkHandler(sink),
        hostname="127.0.0.1",
        port=sink.port,
        authenticator=authenticator,
        **tls,
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@contextmanager
def dropping_server() -> Iterator[int]:
    """A server that greets like SMTP and then closes every connection (a dropped session)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"220 relay ESMTP\r\n")
                time.sleep(0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
