"""The HTTP API: Segment-compatible ingestion and the management API (FastAPI)."""

from engine.api.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
