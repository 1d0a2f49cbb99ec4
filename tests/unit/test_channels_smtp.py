"""SMTP delivery against a real aiosmtpd server on loopback."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import pytest
from receivers import smtp_server
from redisproc import free_port

from engine.channels.base import DeliveryError
from engine.channels.smtp import SmtpChannel
from engine.core.effects import ActionEffect
from engine.settings import Settings

SENDER = "Customer Success <cs@vendor.example>"


def email(key: str = "0123abcd", html: bool = False) -> ActionEffect:
    payload = {
        "to": "champion@acme.example",
        "to_role": "champion",
        "subject": "Welcome aboard",
        "body": "<p>Hello</p>" if html else "Hello, Ada.",
        "html": html,
        "message_id": f"<{key}@hourglass>",
    }
    return ActionEffect(key, 1_772_524_800.0, "acct-1", "welcome", 1, "email", "live", payload, "0")


def test_an_email_reaches_the_server_with_its_message_id() -> None:
    with smtp_server() as mailbox:
        receipt = SmtpChannel("127.0.0.1", mailbox.port, sender=SENDER).deliver(email())
    assert receipt == f"smtp 127.0.0.1:{mailbox.port} <0123abcd@hourglass>"
    assert mailbox.envelopes == [("cs@vendor.example", ["champion@acme.example"])]
    [message] = mailbox.messages
    assert message["Message-ID"] == "<0123abcd@hourglass>"
    assert message["X-Hourglass-Idempotency-Key"] == "0123abcd"
    assert (message["From"], message["To"]) == (SENDER, "champion@acme.example")
    assert message["Subject"] == "Welcome aboard"
    assert parsedate_to_datetime(message["Date"]).timestamp() == 1_772_524_800.0
    assert message.get_payload(decode=True).strip() == b"Hello, Ada."


def test_sending_again_repeats_the_message_id_so_receivers_can_dedupe() -> None:
    with smtp_server() as mailbox:
        channel = SmtpChannel("127.0.0.1", mailbox.port)
        channel.deliver(email("k-twice"))
        channel.deliver(email("k-twice"))
    assert mailbox.message_ids() == ["<k-twice@hourglass>", "<k-twice@hourglass>"]
    assert len({bytes(m.as_bytes()) for m in mailbox.messages}) == 1  # byte-identical


def test_an_html_email_is_multipart_alternative() -> None:
    with smtp_server() as mailbox:
        SmtpChannel("127.0.0.1", mailbox.port).deliver(email(html=True))
    [message] = mailbox.messages
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.walk()]
    assert parts == ["multipart/alternative", "text/plain", "text/html"]


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("450 Mailbox busy", True), ("452 Too many recipients", True),
     ("550 No such user", False), ("553 Not allowed", False)],
)  # fmt: skip
def test_refusals_are_classified_by_their_reply_code(reply: str, retryable: bool) -> None:
    with smtp_server() as mailbox:
        mailbox.reject.append(reply)
        with pytest.raises(DeliveryError) as failed:
            SmtpChannel("127.0.0.1", mailbox.port).deliver(email())
    assert failed.value.retryable is retryable
    assert reply.split()[0] in str(failed.value)
    assert mailbox.messages == []


def test_an_unreachable_server_is_retryable() -> None:
    with pytest.raises(DeliveryError) as failed:
        SmtpChannel("127.0.0.1", free_port(), timeout=2).deliver(email())
    assert failed.value.retryable is True


@pytest.mark.parametrize(
    ("options", "complaint"),
    [({"starttls": True}, "STARTTLS"), ({"username": "u", "password": "p"}, "AUTH")],
)
def test_a_server_without_starttls_or_auth_is_a_configuration_error(
    options: dict[str, object], complaint: str
) -> None:
    with smtp_server() as mailbox:
        channel = SmtpChannel("127.0.0.1", mailbox.port, **options)  # type: ignore[arg-type]
        with pytest.raises(DeliveryError, match=complaint) as failed:
            channel.deliver(email())
    assert failed.value.retryable is False
    assert mailbox.messages == []


def test_from_settings_reads_the_smtp_settings() -> None:
    config = Settings(smtp_host="127.0.0.1", smtp_port=2525, mail_from=SENDER, smtp_starttls=True)
    channel = SmtpChannel.from_settings(config)
    assert (channel.host, channel.port, channel.sender, channel.starttls) == (
        "127.0.0.1", 2525, SENDER, True,
    )  # fmt: skip
    with pytest.raises(ValueError, match="HOURGLASS_SMTP_HOST"):
        SmtpChannel.from_settings(Settings(smtp_host=None))
