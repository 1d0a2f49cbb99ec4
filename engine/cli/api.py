"""``hourglass api``: the HTTP API (Segment-compatible ingestion and management) on uvicorn."""

from __future__ import annotations

import typer

from engine.cli import app


@app.command()
def api(
    host: str | None = typer.Option(None, help="Interface to bind [HOURGLASS_API_HOST]."),
    port: int | None = typer.Option(
        None, min=1, max=65535, help="Port to listen on [HOURGLASS_API_PORT]."
    ),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes."),
    access_log: bool = typer.Option(True, help="Log every request."),
    log_level: str = typer.Option("info"),
) -> None:
    """Serve the HTTP API (needs REDIS_URL); /openapi.json documents every endpoint."""
    import uvicorn

    from engine.api.auth import ConfigError, Tokens, WriteKeys
    from engine.settings import settings

    config = settings()
    if config.redis_url is None:
        typer.echo("REDIS_URL is not set: the API stores events in Redis", err=True)
        raise typer.Exit(1)
    try:
        WriteKeys(config.write_keys), Tokens(config.tokens)
    except ConfigError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    uvicorn.run(
        "engine.api:app_from_env",
        factory=True,
        host=host or config.api_host,
        port=port or config.api_port,
        workers=workers,
        access_log=access_log,
        log_level=log_level,
        timeout_graceful_shutdown=10,
    )
