"""The channel interface: how a decided action reaches the world."""

from __future__ import annotations

from typing import Protocol

from engine.core.effects import ActionEffect


class DeliveryError(Exception):
    """A delivery failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    """Delivers actions of some types; returns a receipt to record with the idempotency key."""

    def deliver(self, action: ActionEffect) -> str: ...
