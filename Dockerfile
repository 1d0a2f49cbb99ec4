# The Hourglass image: one image for the API, the workers and beat (docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies and the package first, so editing playbooks does not reinstall anything.
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY workers ./workers
RUN pip install .

COPY playbooks ./playbooks

# An unprivileged user owning the working directory (beat keeps its schedule file here).
RUN useradd --create-home --uid 10001 hourglass && chown -R hourglass /app
USER hourglass

ENV HOURGLASS_PLAYBOOKS=/app/playbooks
EXPOSE 8000
CMD ["hourglass", "--help"]
