# phaser: multi-stage image. The build stage makes a wheel and installs it
# with its dependencies into a virtualenv; the final stage copies only that
# virtualenv and runs as an unprivileged user.
#
# It runs `phaser serve` by default; run `phaser worker` for a worker.
# Auth defaults to tokens: add users with `phaser user add NAME` (the users
# file lives in /var/lib/phaser, which should be a volume).
# No Docker engine runs on the development machines, so this file is kept
# simple enough to review by eye.

FROM python:3.12.8-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/phaser
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/phaser/bin/pip install --no-cache-dir ".[astro]"

FROM python:3.12.8-slim-bookworm AS runtime
ENV PATH=/opt/phaser/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PHASER_DATA_DIR=/var/lib/phaser \
    PHASER_LOG_PROFILE=production \
    PHASER_AUTH=token
RUN useradd --system --uid 1000 --home-dir /var/lib/phaser --create-home phaser
COPY --from=build /opt/phaser /opt/phaser
USER phaser
WORKDIR /var/lib/phaser
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
ENTRYPOINT ["phaser"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
