# signbot: one image for every replica (`signbot serve`, roles all|api|worker).
#
#   docker build -t signbot:local .
#   docker run --rm -p 8000:8000 -v signbot-data:/data signbot:local
#
# Where the code lives, and why it is installed editable: bot/migrations.py finds the Alembic
# scripts at Path(bot.__file__).parent.parent / "alembic". A regular `pip install .` would put
# `bot` in site-packages, and that path would point at site-packages/alembic, the Alembic
# *library*. So the source tree is copied to /app and installed with `pip install -e /app`
# (the same way the README's development set-up installs it): `bot` is imported from /app/bot,
# the migrations are /app/alembic, and the `signbot` console script exists in the venv. The
# shipped templates are /app/templates (SIGNBOT_TEMPLATES_DIR, and also the default
# ./templates from WORKDIR /app).

# ---------------------------------------------------------------------------------- builder
FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
# Dependencies first, from pyproject.toml alone: this layer is reused while only the source
# changes. Every runtime dependency ships wheels for CPython 3.11 (no compiler needed).
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the application itself (.dockerignore keeps out tests, bench, .git, local data).
COPY . /app
RUN pip install --no-deps -e /app \
    && python -m compileall -q /app/bot /app/alembic \
    && signbot --help >/dev/null

# ---------------------------------------------------------------------------------- runtime
FROM python:3.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="signbot" \
      org.opencontainers.image.description="Self-hostable e-signature with a Certyneo-compatible REST API and a Slack bot" \
      org.opencontainers.image.licenses="MIT"

# A fixed, non-root uid/gid (10001) owning only the data directory; the code stays root-owned
# and read-only for the process.
RUN groupadd --system --gid 10001 signbot \
    && useradd --system --uid 10001 --gid signbot --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin signbot \
    && install -d -o signbot -g signbot -m 0750 /data

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app

# No secrets here: SIGNBOT_SECRET_KEY, database passwords, S3 keys and the sealing PKCS#12
# come from the environment (or mounted files) at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SIGNBOT_DATA_DIR=/data \
    SIGNBOT_TEMPLATES_DIR=/app/templates \
    SIGNBOT_HOST=0.0.0.0 \
    SIGNBOT_PORT=8000 \
    SIGNBOT_LOG_FORMAT=json

USER signbot
EXPOSE 8000

# Liveness: /healthz answers as soon as the process serves (after migrations; hence the start
# period). No curl in the slim image: Python's urllib, on the port the server listens on.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SIGNBOT_PORT', '8000'), timeout=4)"]

# uvicorn drains in-flight requests on SIGTERM (graceful shutdown: 20 s; keep the orchestrator's
# stop timeout above that, e.g. compose's stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["signbot", "serve"]
