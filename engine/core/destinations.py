"""Named destinations for webhooks and Slack: playbooks name them, configuration holds URLs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Destination(BaseModel):
    """Where a named destination points. The URL comes from the environment, never a playbook."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    secret_env: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")
    description: str = ""
    #: Allow private/loopback addresses (for a destination inside your network).
    allow_private: bool = False


class Destinations(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["destinations"] = "destinations"
    webhooks: dict[str, Destination] = {}
    slack: dict[str, Destination] = {}


NO_DESTINATIONS = Destinations()
