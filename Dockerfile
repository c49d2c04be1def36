# UNTESTED: written without a Docker engine to build or run it (see docs/deployment.md).
# Switchboard's webhook service: gunicorn serving wsgi:app as a non-root user.

# The agent console's livekit-client, from the npm registry (served by the app, no CDN).
# Node 22: livekit-client's dependency machina declares node >= 22.22.
FROM node:22-slim AS console
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
RUN npm run build

FROM python:3.11-slim

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
COPY . .
COPY --from=console /build/app/static/vendor/ app/static/vendor/
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin switchboard
USER switchboard

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD python -c "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"

CMD ["gunicorn", "-c", "app/gunicorn_conf.py", "wsgi:app"]
