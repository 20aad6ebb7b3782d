# One image for every Lanner component: `docker run lanner server executor|worker|...`.

# The web UI, built from its committed lock; only the built files reach the image.
FROM node:20-slim AS ui
WORKDIR /src/webserver/ui
COPY webserver/ui/package.json webserver/ui/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY webserver/ui/ ./
RUN npx vite build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
COPY --from=ui /src/webserver/static/ui webserver/static/ui
# setuptools needs the README named in pyproject.toml; an empty one is enough to build.
RUN test -f README.md || touch README.md \
    && pip install '.[ha]' \
    && rm -rf /src

RUN useradd --system --uid 1000 --home-dir /var/lib/lanner --create-home lanner
USER lanner
RUN mkdir -p /var/lib/lanner/storage
WORKDIR /var/lib/lanner
ENV LANNER_DATA_DIR=/var/lib/lanner

# Every component answers /health/live: the `server` ones on the management port, `server
# local` on its API port; the check asks both.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r\nfor port in (os.environ.get('LANNER_METRICS_PORT', '8081'), os.environ.get('LANNER_PORT', '8080')):\n    try:\n        r.urlopen(f'http://127.0.0.1:{port}/health/live', timeout=3)\n        raise SystemExit(0)\n    except OSError:\n        pass\nraise SystemExit(1)"]

ENTRYPOINT ["lanner"]
CMD ["--help"]
