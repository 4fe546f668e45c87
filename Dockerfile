# freebusy-proxy: one image for both the proxy (`serve`) and the mock Graph (`mock-graph`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies and package first, config last: editing a config file does not reinstall.
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN pip install . && rm -rf build proxy.egg-info freebusy_proxy.egg-info

COPY config ./config

# Non-root. /certs is created here, owned by the app user, so a fresh named volume mounted
# there inherits that ownership and the mock can write its CA into it.
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && mkdir /certs && chown app:app /certs
USER app

EXPOSE 8080
ENTRYPOINT ["freebusy-proxy"]
# Inside a container the demo must listen beyond loopback to be reachable.
CMD ["serve", "--host", "0.0.0.0"]
