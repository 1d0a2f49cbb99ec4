# The Hourglass image: one image for the API, the workers and beat (docker-compose.yml).
# The core's hot modules are compiled with mypyc in a build stage (setup.py, HOURGLASS_COMPILE);
# the image itself carries the wheel, not the sources, so nothing shadows the compiled modules.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY engine ./engine
COPY workers ./workers
# mypyc type-checks against the dependencies: install them and the compiler, then build.
RUN pip install "setuptools>=77" wheel ".[compile]"
RUN HOURGLASS_COMPILE=1 pip wheel --no-build-isolation --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies and the package first, so editing playbooks does not reinstall anything.
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels

COPY playbooks ./playbooks

# An unprivileged user owning the working directory (beat keeps its schedule file here).
RUN useradd --create-home --uid 10001 hourglass && chown -R hourglass /app
USER hourglass

ENV HOURGLASS_PLAYBOOKS=/app/playbooks
EXPOSE 8000
CMD ["hourglass", "--help"]
