"""Webhooks and Slack: JSON POSTs to named destinations, signed the Standard Webhooks way.

A destination's URL (and signing secret) come from the environment variables the destinations
document names. Every request carries ``Idempotency-Key: <key>`` and the Standard Webhooks
headers ``webhook-id`` (the same key: equal on every retry), ``webhook-timestamp`` and, when the
destination has a secret, ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.
The host goes through the SSRF guard and the connection is pinned to the checked address;
redirects are never followed. 2xx is delivered; 408, 429, 5xx and network errors are worth
retrying; any other status is not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import os
import time
from collections.abc import Callable, Collection, Mapping
from typing import Literal
from urllib.parse import unquote, urlsplit

import orjson

from engine.channels.base import DeliveryError
from engine.channels.guard import Resolver, connection, pin, system_resolver
from engine.core.destinations import Destination
from engine.core.effects import ActionEffect

USER_AGENT = "Hourglass-Webhooks/0.1"
#: Seconds to connect, and to wait for each read of the response.
HTTP_TIMEOUT_S = 10.0
#: The most of a response body read (and kept in an error) before the connection is closed.
MAX_RESPONSE = 64 * 1024
SECRET_PREFIX = "whsec_"
RETRYABLE_STATUS = frozenset({408, 429})


def decode_secret(value: str) -> bytes:
    """A Standard Webhooks secret (``whsec_<base64>``, prefix optional) as the HMAC key."""
    text = value.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as error:
        raise ValueError(f"the signing secret is not base64 ({SECRET_PREFIX}<base64>)") from error
    if not key:
        raise ValueError("the signing secret is empty")
    return key


def signature(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` (Standard Webhooks)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(key: str, timestamp: int, body: bytes, secret: bytes | None) -> dict[str, str]:
    """The headers of one POST: content type, idempotency key, Standard Webhooks headers."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": key,
        "webhook-id": key,
        "webhook-timestamp": str(timestamp),
    }
    if secret is not None:
        headers["webhook-signature"] = signature(secret, key, timestamp, body)
    return headers


def check_status(status: int, response: bytes, location: str | None) -> None:
    """Raise the ``DeliveryError`` a non-2xx status deserves (retryable: 408, 429, 5xx)."""
    if 200 <= status < 300:
        return
    snippet = response[:500].decode(errors="replace")
    if 300 <= status < 400:
        message = f"HTTP {status}: redirects are not followed (Location: {location})"
        raise DeliveryError(message, retryable=False)
    retryable = status in RETRYABLE_STATUS or status >= 500
    raise DeliveryError(f"HTTP {status}: {snippet}", retryable=retryable)


class WebhookChannel:
    """Delivers ``webhook`` (the rendered body) or ``slack`` (``{"text": ...}``) actions."""

    def __init__(
        self,
        destinations: Mapping[str, Destination],
        *,
        kind: Literal["webhook", "slack"] = "webhook",
        allow_private: Collection[str] = (),
        env: Mapping[str, str] | None = None,
        resolver: Resolver = system_resolver,
        timeout: float = HTTP_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.destinations = dict(destinations)
        self.kind = kind
        self.allow_private = frozenset(allow_private)
        self.env = env
        self.resolver = resolver
        self.timeout = timeout
        self.clock = clock

    def _variable(self, name: str, role: str, destination: str) -> str:
        value = (os.environ if self.env is None else self.env).get(name)
        if not value:
            message = f"{self.kind} destination {destination!r}: {role} variable {name} is not set"
            raise DeliveryError(message, retryable=False)
        return value

    def body(self, action: ActionEffect) -> bytes:
        """The JSON body: a webhook's rendered payload, or a Slack message's text."""
        if self.kind == "slack":
            return orjson.dumps({"text": action.payload.get("text", "")})
        return orjson.dumps(action.payload.get("body", {}))

    def deliver(self, action: ActionEffect) -> str:
        """POST the action to its destination; the receipt names the status and address."""
        name = str(action.payload.get("destination", ""))
        destination = self.destinations.get(name)
        if destination is None:
            raise DeliveryError(f"no {self.kind} destination named {name!r}", retryable=False)
        url = self._variable(destination.url_env, "URL", name)
        secret: bytes | None = None
        if destination.secret_env:
            try:
                secret = decode_secret(self._variable(destination.secret_env, "secret", name))
            except ValueError as error:
                raise DeliveryError(f"destination {name!r}: {error}", retryable=False) from error
        body = self.body(action)
        headers = webhook_headers(action.key, int(self.clock()), body, secret)
        allowed = destination.allow_private or name in self.allow_private
        return self.post(url, body, headers, allow_private=allowed)

    def post(self, url: str, body: bytes, headers: dict[str, str], *, allow_private: bool) -> str:
        """POST ``body`` to ``url`` through the guard, pinned, without following redirects."""
        parts = urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as error:
            raise DeliveryError(f"bad destination URL: {error}", retryable=False) from error
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise DeliveryError("a destination URL must be http(s)://host/...", retryable=False)
        address = pin(host, port, allow_private=allow_private, resolver=self.resolver)
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers = {**headers, "Authorization": "Basic " + base64.b64encode(pair).decode()}
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = connection(parts.scheme, host, port, address, self.timeout)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            status, location = response.status, response.getheader("Location")
            content = response.read(MAX_RESPONSE)
        except (OSError, http.client.HTTPException) as error:
            raise DeliveryError(f"POST {host}: {error!r}", retryable=True) from error
        finally:
            conn.close()
        check_status(status, content, location)
        return f"http {status} {host} ({address})"
