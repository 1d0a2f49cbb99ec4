"""Embedded-mode delivery: emails as .eml files, webhooks and Slack messages as JSON, all in a
local outbox folder a new user can open."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import orjson

from engine.core.clock import iso
from engine.core.effects import ActionEffect

SENDER = "Hourglass <hourglass@localhost>"


def email_message(action: ActionEffect, sender: str = SENDER) -> EmailMessage:
    """The email an action describes; its Message-ID comes from the idempotency key."""
    payload = action.payload
    message = EmailMessage()
    message["From"] = sender
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Message-ID"] = payload["message_id"]
    message["X-Hourglass-Playbook"] = action.playbook
    message["X-Hourglass-Account"] = action.account
    message["X-Hourglass-Idempotency-Key"] = action.key
    if payload.get("html"):
        message.set_content("This message is HTML; open it in a mail client.")
        message.add_alternative(payload["body"], subtype="html")
    else:
        message.set_content(payload["body"])
    return message


class FileOutbox:
    """Writes each delivered action to ``root``: ``emails/*.eml``, ``webhooks/*.json``, …"""

    def __init__(self, root: Path) -> None:
        self.root = root

    def deliver(self, action: ActionEffect) -> str:
        folder = self.root / f"{action.type}s"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{iso(action.at)[:10]}-{action.account}-{action.playbook}-{action.key[:8]}"
        if action.type == "email":
            path = folder / f"{name}.eml"
            path.write_bytes(bytes(email_message(action)))
        else:
            path = folder / f"{name}.json"
            path.write_bytes(orjson.dumps(action.to_dict(), option=orjson.OPT_INDENT_2))
        return str(path)
