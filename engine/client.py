"""A Python client for Hourglass's Segment-compatible API, shaped like Segment's analytics-python.

Calls (``track``, ``identify``, ``group``, ``page``, ``screen``, ``alias``) never block: each
puts a message on a bounded queue and returns its messageId. A background thread sends them to
``/v1/batch`` (gzip, HTTP Basic with the write key), flushing when ``flush_at`` messages are
waiting, ``flush_interval`` seconds after the first one, on :meth:`Client.flush`, and at exit.
429 and 5xx answers and network errors are retried with exponential backoff (honouring
``Retry-After``); the server deduplicates retries by messageId. When the queue is full, new
messages are dropped, counted in ``stats.dropped`` and logged.

    from engine.client import Client
    hourglass = Client("WRITE_KEY", host="https://hourglass.example.com")
    hourglass.track("user-1", "Logged In", group_id="acme")
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import gzip
import http.client
import logging
import queue
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

import orjson

log = logging.getLogger("hourglass.client")

#: Segment's limits, which the server enforces too.
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 480 * 1024  # under the 500 KB request limit, leaving room for the envelope
LIBRARY = {"name": "hourglass-python", "version": "0.1.0"}
_FLUSH = object()


@dataclass
class ClientStats:
    """What the client did with the messages it was given."""

    queued: int = 0
    sent: int = 0
    #: Dropped at once because the queue was full.
    dropped: int = 0
    #: Refused by the server (invalid, or over 32 KB); not retried.
    rejected: int = 0
    #: Given up on after every retry, or refused with a 4xx.
    failed: int = 0
    retries: int = 0


class Common(TypedDict, total=False):
    """Keyword arguments every call takes (as in analytics-python)."""

    anonymous_id: str
    context: dict[str, Any]
    timestamp: datetime | str
    integrations: dict[str, Any]
    message_id: str


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _iso(value: datetime | str | None) -> str:
    if value is None:
        return _now()
    if isinstance(value, str):
        return value
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


class Client:
    """Batches Segment calls to an Hourglass API in a background thread."""

    def __init__(
        self,
        write_key: str,
        host: str = "http://127.0.0.1:8000",
        *,
        flush_at: int = 100,
        flush_interval: float = 0.5,
        max_queue_size: int = 10_000,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        timeout: float = 15.0,
        gzip: bool = True,
    ) -> None:
        if not write_key:
            raise ValueError("write_key is required")
        if flush_at < 1 or flush_interval <= 0 or max_queue_size < 1 or max_retries < 0:
            raise ValueError("flush_at, flush_interval and max_queue_size must be positive")
        url = urlsplit(host)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"host must be an http(s) URL, not {host!r}")
        self.url = url
        self.path = url.path.rstrip("/") + "/v1/batch"
        self.flush_at = flush_at
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        self.gzip = gzip
        self.stats = ClientStats()
        self._auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
        self._queue: queue.Queue[Any] = queue.Queue(max_queue_size)
        self._lock = threading.Lock()
        self._last_drop_log = -float("inf")
        self._stopping = threading.Event()
        self._connection: http.client.HTTPConnection | None = None
        self._carry: bytes | None = None
        self._thread = threading.Thread(target=self._run, name="hourglass-client", daemon=True)
        self._thread.start()
        atexit.register(self.shutdown)

    # -- the Segment calls -------------------------------------------------------------------

    def track(
        self,
        user_id: str | None = None,
        event: str | None = None,
        properties: dict[str, Any] | None = None,
        *,
        group_id: str | None = None,
        **common: Unpack[Common],
    ) -> str:
        """Record that the user did ``event``; ``group_id`` names the account (context.groupId)."""
        if not event:
            raise ValueError("event is required")
        body = {"event": event, "properties": properties or {}}
        return self._enqueue("track", user_id, body, group_id, common)

    def identify(
        self,
        user_id: str | None = None,
        traits: dict[str, Any] | None = None,
        *,
        group_id: str | None = None,
        **common: Unpack[Common],
    ) -> str:
        """Say who the user is (email, role, timezone, name...)."""
        return self._enqueue("identify", user_id, {"traits": traits or {}}, group_id, common)

    def group(
        self,
        user_id: str | None = None,
        group_id: str | None = None,
        traits: dict[str, Any] | None = None,
        **common: Unpack[Common],
    ) -> str:
        """Put the user in an account (``group_id``), with the account's traits."""
        if not group_id:
            raise ValueError("group_id is required")
        body = {"groupId": group_id, "traits": traits or {}}
        return self._enqueue("group", user_id, body, None, common, identity_optional=True)

    def page(
        self,
        user_id: str | None = None,
        category: str | None = None,
        name: str | None = None,
        properties: dict[str, Any] | None = None,
        *,
        group_id: str | None = None,
        **common: Unpack[Common],
    ) -> str:
        """Record a web page view."""
        body = {"category": category, "name": name, "properties": properties or {}}
        return self._enqueue("page", user_id, body, group_id, common)

    def screen(
        self,
        user_id: str | None = None,
        category: str | None = None,
        name: str | None = None,
        properties: dict[str, Any] | None = None,
        *,
        group_id: str | None = None,
        **common: Unpack[Common],
    ) -> str:
        """Record a mobile screen view."""
        body = {"category": category, "name": name, "properties": properties or {}}
        return self._enqueue("screen", user_id, body, group_id, common)

    def alias(self, previous_id: str, user_id: str, **common: Unpack[Common]) -> str:
        """Say ``previous_id`` and ``user_id`` are the same person."""
        if not previous_id or not user_id:
            raise ValueError("previous_id and user_id are required")
        return self._enqueue("alias", user_id, {"previousId": previous_id}, None, common)

    def _enqueue(
        self,
        kind: str,
        user_id: str | None,
        body: dict[str, Any],
        group_id: str | None,
        common: Common,
        *,
        identity_optional: bool = False,
    ) -> str:
        """Build the message and queue it without blocking; its messageId."""
        unknown = set(common) - set(Common.__annotations__)
        if unknown:
            raise TypeError(f"unexpected arguments: {', '.join(sorted(unknown))}")
        anonymous_id = common.get("anonymous_id")
        if not (user_id or anonymous_id or identity_optional):
            raise ValueError("user_id or anonymous_id is required")
        context = {**(common.get("context") or {}), "library": LIBRARY}
        if group_id:
            context["groupId"] = group_id
        message_id = common.get("message_id") or str(uuid.uuid4())
        message = {
            "type": kind,
            "messageId": message_id,
            "timestamp": _iso(common.get("timestamp")),
            "context": context,
            **{key: value for key, value in body.items() if value is not None},
        }
        if user_id:
            message["userId"] = user_id
        if anonymous_id:
            message["anonymousId"] = anonymous_id
        if common.get("integrations"):
            message["integrations"] = common["integrations"]
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self._dropped()
        else:
            with self._lock:
                self.stats.queued += 1
        return str(message_id)

    def _dropped(self) -> None:
        with self._lock:
            self.stats.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log < 10.0:
                return
            self._last_drop_log = now
            dropped = self.stats.dropped
        log.warning("hourglass client queue full: dropped %d message(s) so far", dropped)

    # -- flushing ----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now; wait until it is sent (or given up on). False on timeout."""
        # With a full queue the sender is busy already: no need to wake it.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_FLUSH)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush (waiting at most ``timeout`` s) and stop the sender; runs at exit."""
        if self._stopping.is_set():
            return
        self.flush(timeout)
        self._stopping.set()
        self._thread.join(timeout=1.0)
        atexit.unregister(self.shutdown)
        if self._connection is not None:
            self._connection.close()

    # -- the sender thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not (self._stopping.is_set() and self._queue.empty() and self._carry is None):
            items, taken = self._next_batch()
            try:
                if items:
                    self._upload(items)
            except Exception:  # never let the sender die
                log.exception("hourglass client: sending %d message(s) failed", len(items))
                with self._lock:
                    self.stats.failed += len(items)
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    def _next_batch(self) -> tuple[list[bytes], int]:
        """Up to ``flush_at`` encoded messages within ``flush_interval`` of the first one."""
        items: list[bytes] = []
        size = 0
        taken = 0
        if self._carry is not None:  # cut from the previous batch, its task_done deferred
            items, size, taken, self._carry = [self._carry], len(self._carry), 1, None
        deadline: float | None = time.monotonic() + self.flush_interval if items else None
        while len(items) < self.flush_at:
            wait = 0.2 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            try:
                message = self._queue.get(timeout=wait)
            except queue.Empty:
                if deadline is None and not self._stopping.is_set():
                    continue
                break
            taken += 1
            if message is _FLUSH:
                break
            encoded = self._encode(message)
            if encoded is None:
                continue
            if size + len(encoded) > MAX_BATCH_BYTES:
                self._carry, taken = encoded, taken - 1  # done when the next batch is
                break
            items.append(encoded)
            size += len(encoded)
            if deadline is None:
                deadline = time.monotonic() + self.flush_interval
        return items, taken

    def _encode(self, message: dict[str, Any]) -> bytes | None:
        """The message's JSON, or None (logged, counted) when it is over 32 KB."""
        encoded = orjson.dumps(message, default=str)
        if len(encoded) <= MAX_EVENT_BYTES:
            return encoded
        log.error("hourglass client: message %s is over 32 KB; dropped", message.get("messageId"))
        with self._lock:
            self.stats.rejected += 1
        return None

    def _upload(self, items: list[bytes]) -> None:
        """POST the batch, retrying 429, 5xx and network errors with backoff."""
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                status, headers, body = self._post(items)
            except (OSError, http.client.HTTPException) as error:
                reason = f"network error: {error}"
            else:
                if status == 200:
                    self._done(items, body)
                    return
                reason = f"HTTP {status}: {body[:200]!r}"
                if status != 429 and status < 500:
                    log.error("hourglass client: batch of %d refused, %s", len(items), reason)
                    with self._lock:
                        self.stats.failed += len(items)
                    return
                retry_after = _seconds(headers.get("retry-after"))
            if attempt == self.max_retries:
                break
            delay = retry_after or min(self.backoff_cap, self.backoff_base * 2**attempt)
            log.warning("hourglass client: %s; retrying in %.1fs", reason, delay)
            with self._lock:
                self.stats.retries += 1
            time.sleep(delay * (1.0 if retry_after else random.uniform(0.5, 1.0)))
        log.error("hourglass client: gave up on %d message(s) after retries", len(items))
        with self._lock:
            self.stats.failed += len(items)

    def _done(self, items: list[bytes], body: bytes) -> None:
        rejected: list[dict[str, Any]] = []
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            rejected = orjson.loads(body).get("rejected") or []
        for problem in rejected[:10]:
            log.error("hourglass client: event refused: %s", problem)
        with self._lock:
            self.stats.sent += len(items) - len(rejected)
            self.stats.rejected += len(rejected)

    def _post(self, items: list[bytes]) -> tuple[int, dict[str, str], bytes]:
        """One POST on the kept-alive connection (reopened after any error)."""
        body = b'{"batch":[' + b",".join(items) + b'],"sentAt":' + orjson.dumps(_now()) + b"}"
        headers = {
            "Content-Type": "application/json",
            "Authorization": self._auth,
            "User-Agent": f"{LIBRARY['name']}/{LIBRARY['version']}",
        }
        if self.gzip:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        connection = self._connection or self._connect()
        try:
            connection.request("POST", self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except Exception:
            connection.close()
            self._connection = None
            raise
        if response.getheader("connection", "").lower() == "close":
            connection.close()
            self._connection = None
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def _connect(self) -> http.client.HTTPConnection:
        host, port = self.url.hostname or "", self.url.port
        if self.url.scheme == "https":
            self._connection = http.client.HTTPSConnection(host, port, timeout=self.timeout)
        else:
            self._connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
        return self._connection


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (the delta form), capped at five minutes."""
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), 300.0) or None
    except ValueError:
        return None
