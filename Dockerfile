# freebusy-proxy: one image for both the proxy (`serve`) and the mock Graph (`mock-graph`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone: a code edit reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the package itself, its dependencies already in place.
COPY README.md LICENSE ./
COPY proxy ./proxy
RUN pip install --no-deps . && rm -rf build proxy.egg-info freebusy_proxy.egg-info

COPY config ./config

# Non-root. /certs and /data are created here, owned by the app user, so fresh named volumes
# mounted there inherit that ownership (the mock writes its CA into /certs, the proxy its
# connections into /data).
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && mkdir /certs /data && chown app:app /certs /data
USER app

# 8080: the proxy. 8443: the demo's mock Graph, where the connect flow's sign-in page is.
EXPOSE 8080 8443
ENTRYPOINT ["freebusy-proxy"]
# The demo, reachable from the host with `docker run -p 8080:8080 -p 8443:8443`.
CMD ["serve", "--host", "0.0.0.0", "--mock-port", "8443"]
