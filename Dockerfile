# Switchboard's webhook service: gunicorn serving wsgi:app as a non-root user.
# Two images from one file:
#   production (the default, last stage)  the service alone: the stand-ins in app/sandbox are left out
#   demo (--target demo)                   the same plus app/sandbox, running `flask demo --live` on SQLite
# What has been checked: a test reads this file's stages (tests/test_container_files.py): the
# production stage copies the code from a stage that deletes app/sandbox, and only the demo
# stage copies it back. What has not: no Docker engine was at hand where it was written, so
# neither image has been built or run. See docs/deployment.md.

# The agent console's livekit-client, from the npm registry (served by the app, no CDN).
# Node 22: livekit-client's dependency machina declares node >= 22.22.
FROM node:22-slim AS console
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
RUN npm run build

# The code without the stand-ins: the service never imports app/sandbox, and production ships without it.
FROM python:3.11-slim AS code
WORKDIR /src
COPY . .
RUN rm -rf app/sandbox

FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /srv/switchboard

# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code stays owned by root: the service only reads it.
COPY --from=code /src/ ./
COPY --from=console /build/app/static/vendor/ app/static/vendor/
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin switchboard

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD python -c "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"

# The demo: the stand-ins of Twilio, LiveKit and the LLM, and a writable instance/ for the
# embedded SQLite database and the development secret key. No account, no other container.
FROM base AS demo
COPY app/sandbox/ app/sandbox/
RUN mkdir -p instance && chown switchboard instance
USER switchboard
CMD ["flask", "--app", "wsgi", "demo", "--live", "--port", "8000"]

FROM base AS production
USER switchboard
CMD ["gunicorn", "-c", "app/gunicorn_conf.py", "wsgi:app"]
