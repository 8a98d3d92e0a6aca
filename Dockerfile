# flux-lora-bot: a slim image that runs as a non-root user, keeps its data in /data and reads
# its config read-only from /config/config.toml. Secrets come from the environment.
# Python 3.12 on Debian 12: a minor version, so a rebuild never jumps to another Python
FROM python:3.12-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.12-slim-bookworm
# the config is always /config/config.toml: a forgotten mount is a one-line error, not a bot
# running on the defaults; health and metrics always answer on 8080 inside the container
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLUX_BOT_CONFIG=/config/config.toml \
    FLUX_BOT_HTTP_LISTEN=0.0.0.0:8080
# fixed ids (10001), so a host's volume permissions do not depend on what else the image has
RUN groupadd --system --gid 10001 flux \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin flux \
    && mkdir -p /data /config \
    && chown flux:flux /data \
    && chmod 700 /data
COPY --from=build /install /usr/local
USER flux
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["flux-lora-bot"]
CMD ["run"]
