"""Webhook and Slack delivery against a loopback receiver: Standard Webhooks signing (checked
with the reference library and the spec's example), status classification, no redirects,
timeouts, configuration errors, the guard and pinning."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from receivers import WebhookReceiver, webhook_receiver
from redisproc import free_port
from standardwebhooks import Webhook

from engine.channels.base import DeliveryError
from engine.channels.webhook import WebhookChannel, decode_secret, signature
from engine.core.destinations import Destination
from engine.core.effects import ActionEffect

SECRET = "whsec_" + base64.b64encode(b"a-secret-of-thirty-two-bytes....").decode()
DESTINATIONS = {
    "crm": Destination(url_env="CRM_URL", secret_env="CRM_SECRET"),
    "billing": Destination(url_env="BILLING_URL"),
    "inside": Destination(url_env="INSIDE_URL", allow_private=True),
}


def webhook(key: str = "k1", destination: str = "crm") -> ActionEffect:
    body = {"account_id": "acct-1", "signal": "seat_usage_over_90", "seats": "42", "é": "ü"}
    payload = {"destination": destination, "body": body, "idempotency_key": key}
    return ActionEffect(key, 1.0, "acct-1", "growth", 1, "webhook", "live", payload, "0.0")


def slack(key: str = "s1") -> ActionEffect:
    payload = {"destination": "alerts", "text": "Acme churned."}
    return ActionEffect(key, 1.0, "acct-1", "churn", 1, "slack", "live", payload, "0.0")


def channel(receiver: WebhookReceiver, **options: Any) -> WebhookChannel:
    env = {"CRM_URL": receiver.url(), "CRM_SECRET": SECRET, "BILLING_URL": receiver.url("/bill")}
    env.update(options.pop("env", {}))
    options.setdefault("allow_private", {"crm", "billing"})
    return WebhookChannel(DESTINATIONS, env=env, **options)


# -- signing -------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_example() -> None:
    secret = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signed = signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_secrets_decode_with_or_without_the_prefix_and_refuse_non_base64() -> None:
    raw = b"a-secret-of-thirty-two-bytes...."
    assert decode_secret(SECRET) == raw == decode_secret(SECRET.removeprefix("whsec_"))
    with pytest.raises(ValueError, match="base64"):
        decode_secret("whsec_not base64!")
    with pytest.raises(ValueError, match="empty"):
        decode_secret("whsec_")


def test_a_delivered_webhook_verifies_with_the_reference_library() -> None:
    with webhook_receiver() as receiver:
        receipt = channel(receiver).deliver(webhook())
    assert receipt == "http 200 127.0.0.1 (127.0.0.1)"
    [request] = receiver.requests
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == request.headers["webhook-id"] == "k1"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    verified = Webhook(SECRET).verify(request.body, request.headers)
    assert verified == webhook().payload["body"]
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + base64.b64encode(b"another secret").decode()).verify(
            request.body, request.headers
        )


def test_the_timestamp_comes_from_the_clock_and_is_signed() -> None:
    with webhook_receiver() as receiver:
        channel(receiver, clock=lambda: 1_700_000_000.9).deliver(webhook())
    [request] = receiver.requests
    assert request.headers["webhook-timestamp"] == "1700000000"
    expected = signature(decode_secret(SECRET), "k1", 1_700_000_000, request.body)
    assert request.headers["webhook-signature"] == expected


def test_a_destination_without_a_secret_is_sent_unsigned() -> None:
    with webhook_receiver() as receiver:
        channel(receiver).deliver(webhook(destination="billing"))
    [request] = receiver.requests
    assert request.path == "/bill"
    assert "webhook-signature" not in request.headers
    assert request.headers["webhook-id"] == "k1"


def test_slack_gets_the_text_as_json() -> None:
    with webhook_receiver() as receiver:
        destinations = {"alerts": Destination(url_env="SLACK_URL")}
        env = {"SLACK_URL": receiver.url("/services/T0/B0/x")}
        sent = WebhookChannel(
            destinations, kind="slack", env=env, allow_private={"alerts"}
        ).deliver(slack())
    [request] = receiver.requests
    assert orjson.loads(request.body) == {"text": "Acme churned."}
    assert request.path == "/services/T0/B0/x" and sent.startswith("http 200")


# -- statuses --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered(status: int) -> None:
    with webhook_receiver([status]) as receiver:
        assert channel(receiver).deliver(webhook()).startswith(f"http {status}")


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(408, True), (429, True), (500, True), (502, True), (503, True),
     (400, False), (401, False), (403, False), (404, False), (410, False), (422, False)],
)  # fmt: skip
def test_failures_are_classified(status: int, retryable: bool) -> None:
    with webhook_receiver([status]) as receiver, pytest.raises(DeliveryError) as failed:
        channel(receiver).deliver(webhook())
    assert failed.value.retryable is retryable
    assert f"HTTP {status}" in str(failed.value)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(status: int) -> None:
    with webhook_receiver([status]) as receiver, pytest.raises(DeliveryError) as failed:
        channel(receiver).deliver(webhook())
    assert failed.value.retryable is False
    assert "not followed" in str(failed.value)
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_closed_port_is_retryable() -> None:
    with webhook_receiver() as receiver:
        env = {"CRM_URL": f"http://127.0.0.1:{free_port()}/hook"}
        with pytest.raises(DeliveryError) as failed:
            channel(receiver, env=env).deliver(webhook())
    assert failed.value.retryable is True
    assert receiver.requests == []


def test_a_slow_receiver_times_out_retryably() -> None:
    with webhook_receiver(delays=[1.0]) as receiver, pytest.raises(DeliveryError) as failed:
        started = time.monotonic()
        channel(receiver, timeout=0.2).deliver(webhook())
    assert failed.value.retryable is True
    assert "timed out" in str(failed.value).lower()
    assert time.monotonic() - started < 0.9


# -- configuration, guard and pinning ----------------------------------------------------------


def test_a_missing_url_variable_is_a_clear_non_retryable_error() -> None:
    with webhook_receiver() as receiver, pytest.raises(DeliveryError) as failed:
        channel(receiver, env={"CRM_URL": ""}).deliver(webhook())
    assert failed.value.retryable is False
    assert str(failed.value) == "webhook destination 'crm': URL variable CRM_URL is not set"


@pytest.mark.parametrize(
    ("env", "action", "message"),
    [
        ({"CRM_SECRET": ""}, webhook(), "secret variable CRM_SECRET is not set"),
        ({"CRM_SECRET": "whsec_***"}, webhook(), "not base64"),
        ({}, webhook(destination="nowhere"), "no webhook destination named 'nowhere'"),
        ({"CRM_URL": "ftp://127.0.0.1/x"}, webhook(), "must be http(s)"),
        ({"CRM_URL": "http://127.0.0.1:99999/x"}, webhook(), "bad destination URL"),
    ],
)
def test_configuration_errors_are_not_retryable(
    env: dict[str, str], action: ActionEffect, message: str
) -> None:
    with webhook_receiver() as receiver, pytest.raises(DeliveryError) as failed:
        channel(receiver, env=env).deliver(action)
    assert failed.value.retryable is False
    assert message in str(failed.value)
    assert receiver.requests == []


def test_loopback_is_refused_unless_allow_listed() -> None:
    with webhook_receiver() as receiver:
        with pytest.raises(DeliveryError, match="loopback") as failed:
            channel(receiver, allow_private=set()).deliver(webhook())
        assert failed.value.retryable is False
        assert receiver.requests == []
        env = {"INSIDE_URL": receiver.url("/inside")}
        channel(receiver, allow_private=set(), env=env).deliver(webhook(destination="inside"))
    assert [r.path for r in receiver.requests] == ["/inside"]  # allow_private in destinations


def test_delivery_resolves_once_and_connects_to_the_checked_address() -> None:
    answers = iter(["127.0.0.1", "127.0.0.2"])  # a rebinding DNS; nobody listens on .2
    asked: list[str] = []

    def rebinding(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return [next(answers)]

    with webhook_receiver() as receiver:
        env = {"CRM_URL": f"http://user:p%40ss@hooks.example.test:{receiver.port}/in?x=1"}
        receipt = channel(receiver, env=env, resolver=rebinding).deliver(webhook())
    assert asked == ["hooks.example.test"]
    assert receipt == "http 200 hooks.example.test (127.0.0.1)"
    [request] = receiver.requests
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
    assert request.path == "/in?x=1"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
