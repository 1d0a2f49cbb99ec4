"""Running the Ingestor for a request, its failures as 429 or 503.

Ingestion routes call :func:`append` on the event loop itself. The Ingestor's work is mostly
CPU-bound Python (validation, routing) between short Redis round trips; handing it to a thread
pool made the API slower (GIL hand-offs between the loop and the pool cost ~25% of throughput,
measured with ``python -m bench.http``). Management routes, which read more than they compute,
run in FastAPI's thread pool. With Redis down, an ingest call waits at most the client's connect
timeout (2 s) before it answers 503.
"""

from __future__ import annotations

from typing import Any

from engine.api.errors import ApiError
from engine.api.services import KickFailed, Services
from engine.redis.ingest import BacklogFull, IngestResult, IngestUnavailable


def append(
    svc: Services, items: list[Any], received: float, kind: str | None = None
) -> IngestResult:
    """Validate, dedupe and append ``items``; 429 over the backlog limit, 503 without Redis
    (or without the broker, after the events were stored: a retry is deduplicated)."""
    try:
        return svc.ingestor.ingest(items, received_at=received, kind=kind)
    except BacklogFull as error:
        raise ApiError(
            429,
            "backlog_full",
            f"the backlog is over its limit: {error}",
            headers={"Retry-After": str(error.retry_after_s)},
        ) from None
    except IngestUnavailable as error:
        raise ApiError(503, "unavailable", str(error), headers={"Retry-After": "1"}) from None
    except KickFailed as error:
        message = f"stored, but no drain could be queued ({error}); retry (it is deduplicated)"
        raise ApiError(503, "broker_unavailable", message, headers={"Retry-After": "1"}) from None
