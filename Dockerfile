# syntax=docker/dockerfile:1
# mappa-broker: one image for every service (an agency's gateway, the ledger, the
# one-shot deploy commands); the command chooses. deploy/README.md builds and runs it.
#
# Two stages: the first builds wheels (ours and every dependency's) with pip; the second
# installs them into a virtual environment on a slim runtime with no build tools, no
# pip cache and no source tree. It runs as an unprivileged user, and writes nothing
# outside the data directory (a volume) and /tmp (a tmpfs): run it with a read-only
# root filesystem.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY broker ./broker
COPY agency_adapters ./agency_adapters
RUN python -m pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ARG MAPPA_UID=10001
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Installed from the wheels the first stage built, nothing fetched: --no-index. pip
# compiles the bytecode now, so nothing needs writing at run time.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/mappa \
    && /opt/mappa/bin/pip install --no-index --find-links /wheels mappa-broker \
    && /opt/mappa/bin/pip uninstall --yes pip \
    && groupadd --system --gid "${MAPPA_UID}" mappa \
    && useradd --system --uid "${MAPPA_UID}" --gid mappa --home-dir /nonexistent \
        --no-create-home --shell /usr/sbin/nologin mappa \
    && install --directory --owner mappa --group mappa --mode 0700 /var/lib/mappa

# Read-only root filesystem: Python writes no bytecode, temporary files go to /tmp (a
# tmpfs), HOME and any cache are under /tmp, the data directory is a volume.
ENV PATH=/opt/mappa/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    MAPPA_CACHE_DIR=/tmp/mappa-cache \
    MAPPA_DATA_DIR=/var/lib/mappa

USER mappa:mappa
WORKDIR /var/lib/mappa
VOLUME ["/var/lib/mappa"]
# The HTTP API (`mappa serve`, `mappa ledger serve`), given --host 0.0.0.0 --port 8700.
EXPOSE 8700

# Readiness, not mere liveness: 503 (or no answer) when the broker, a store or the
# ledger cannot do its job (broker/api/health.py). No curl in the image: Python asks.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=4 \
    CMD ["python", "-c", "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=4)", "http://127.0.0.1:8700/readyz"]

ENTRYPOINT ["mappa"]
CMD ["--help"]
