"""Local receivers for delivery tests, on 127.0.0.1 only: an HTTP webhook receiver that answers
from a script and dedupes by ``Idempotency-Key`` as a real one should, and an SMTP server
(aiosmtpd) that records every message."""

from __future__ import annotations

import email
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from redisproc import free_port


@dataclass
class Request:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: When it arrived (``time.monotonic()``).
    at: float = field(default_factory=time.monotonic)


@dataclass
class WebhookReceiver:
    """Answers POSTs with ``statuses`` in turn (then 200), each after ``delays`` in turn (then 0).

    ``processed`` holds each Idempotency-Key once, the first time a request with it was
    answered 2xx: what a receiver that deduplicates does its work for.
    """

    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def keys(self) -> set[str]:
        """The distinct Idempotency-Keys received."""
        with self.lock:
            return {r.headers.get("idempotency-key", "") for r in self.requests}

    def posts(self) -> int:
        with self.lock:
            return len(self.requests)

    def handle(self, request: Request) -> tuple[int, dict[str, str], float]:
        """Record the request; the status, extra headers and delay to answer with."""
        with self.lock:
            self.requests.append(request)
            status = self.statuses.pop(0) if self.statuses else 200
            delay = self.delays.pop(0) if self.delays else 0.0
        headers = {"Location": self.url("/elsewhere")} if 300 <= status < 400 else {}
        return status, headers, delay

    def done(self, request: Request, status: int) -> None:
        """After answering: a 2xx request's key is processed once."""
        key = request.headers.get("idempotency-key", "")
        with self.lock:
            if 200 <= status < 300 and key not in self.processed:
                self.processed.append(key)


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = Request("POST", self.path, headers, self.rfile.read(length))
            status, extra, delay = receiver.handle(request)
            time.sleep(delay)
            receiver.done(request, status)
            try:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the sender is gone (killed, or timed out)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def webhook_receiver(
    statuses: list[int] | None = None, delays: list[float] | None = None
) -> Iterator[WebhookReceiver]:
    """A receiver listening on 127.0.0.1 for the duration of the block."""
    receiver = WebhookReceiver(list(statuses or []), list(delays or []))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Mailbox:
    """What the SMTP server received; ``reject`` answers the next RCPTs with these replies."""

    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    reject: list[str] = field(default_factory=list)
    port: int = 0

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.reject:
            return self.reject.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.original_content))
        return "250 Message accepted"


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """An aiosmtpd server on 127.0.0.1 for the duration of the block."""
    mailbox = Mailbox(port=free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
