# phaser: multi-stage image. The build stage installs the locked
# dependencies (requirements.lock: exact versions with hashes) and then
# phaser itself into a virtualenv; the final stage copies only that
# virtualenv and runs as an unprivileged user. No compiler or build tool
# reaches the final stage.
#
# It runs `phaser serve` by default; run `phaser worker` for a worker
# (Kubernetes manifests: kubernetes/). Auth defaults to tokens: add users
# with `phaser user add NAME` (the users file lives in /var/lib/phaser,
# which should be a volume, or PHASER_USERS_FILE names a mounted secret).
#
# No Docker engine runs on the development machines: this file is linted
# by hadolint in the test suite (tests/test_dockerfile.py) and kept simple
# enough to review by eye. Health: HEALTHCHECK below for plain Docker;
# Kubernetes uses the /health and /ready probes instead.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/phaser
COPY requirements.lock ./
RUN /opt/phaser/bin/pip install --no-cache-dir --require-hashes \
        -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/phaser/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11.11-slim-bookworm AS runtime
# jemalloc instead of glibc's malloc for every phaser process: in 30-min
# soaks the workers' RSS kept growing under glibc (+324 KiB/min in the
# second half; no Python object leaks) and levelled off under jemalloc
# (docs/performance.md, round four). One path on every architecture.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libjemalloc2=5.3.0-1 \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "/usr/lib/$(uname -m)-linux-gnu/libjemalloc.so.2" \
        /usr/local/lib/libjemalloc.so.2
ENV PATH=/opt/phaser/bin:$PATH \
    LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 \
    PYTHONUNBUFFERED=1 \
    PHASER_DATA_DIR=/var/lib/phaser \
    PHASER_LOG_PROFILE=production \
    PHASER_AUTH=token
RUN useradd --system --uid 1000 --user-group --home-dir /var/lib/phaser \
        --create-home phaser
COPY --from=build /opt/phaser /opt/phaser
USER 1000:1000
WORKDIR /var/lib/phaser
EXPOSE 8000 9100
HEALTHCHECK --interval=30s --timeout=3s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
ENTRYPOINT ["phaser"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
