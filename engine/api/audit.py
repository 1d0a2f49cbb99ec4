"""The audit stream ``hg:audit``: one entry per management write — who, what, when, outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis
from redis.typing import EncodableT

from engine.api.auth import Principal
from engine.redis.keys import AUDIT


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded write."""

    id: str
    at: float
    who: str
    role: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class Audit:
    """Appends to and reads the bounded audit stream."""

    def __init__(self, client: redis.Redis, *, max_entries: int = 100_000) -> None:
        self.client = client
        self.max_entries = max_entries

    def record(
        self,
        who: Principal,
        action: str,
        target: str,
        outcome: str,
        at: float,
        detail: dict[str, Any] | None = None,
    ) -> str:
        """Append one entry; its stream id."""
        fields: dict[EncodableT, EncodableT] = {
            "at": at,
            "who": who.name,
            "role": who.role.value,
            "action": action,
            "target": target,
            "outcome": outcome,
            "detail": orjson.dumps(detail or {}, default=str),
        }
        entry_id = self.client.xadd(AUDIT, fields, maxlen=self.max_entries, approximate=True)
        return _text(entry_id)

    def recent(self, limit: int = 100, who: str | None = None) -> list[AuditEntry]:
        """The newest entries first (only ``who``'s, when given, among the newest ``limit``)."""
        rows: Any = self.client.xrevrange(AUDIT, count=limit)
        out: list[AuditEntry] = []
        for entry_id, raw in rows:
            fields = {_text(k): _text(v) for k, v in raw.items()}
            if who is not None and fields.get("who") != who:
                continue
            try:
                detail = orjson.loads(fields.get("detail", "{}"))
            except orjson.JSONDecodeError:
                detail = {}
            out.append(
                AuditEntry(
                    id=_text(entry_id),
                    at=float(fields.get("at", 0.0)),
                    who=fields.get("who", ""),
                    role=fields.get("role", ""),
                    action=fields.get("action", ""),
                    target=fields.get("target", ""),
                    outcome=fields.get("outcome", ""),
                    detail=detail if isinstance(detail, dict) else {},
                )
            )
        return out
