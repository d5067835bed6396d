# edgeddns container image (ZimaOS / CasaOS app, any Docker host).
#   docker build -t edgeddns .
#   docker compose up -d          (see docker-compose.yml and docs/docker.md)
# Host networking is expected: the agent must see the host's addresses and
# address changes (netlink), which a bridged container cannot.
FROM python:3.12-alpine

# tzdata: TZ=Area/City works for log timestamps. The agent itself keeps UTC.
RUN apk add --no-cache tzdata \
    && adduser -D -H -u 1000 -s /sbin/nologin edgeddns \
    && mkdir -p /config /data /usr/share/edgeddns \
    && chown edgeddns:edgeddns /config /data

COPY pyproject.toml README.md LICENSE /src/
COPY edgeddns /src/edgeddns
# bin/edgeddns (pyproject's script-files): the same small launcher the OpenWrt package installs
COPY openwrt/files/usr/bin/edgeddns /src/openwrt/files/usr/bin/edgeddns
RUN pip install --no-cache-dir /src && rm -rf /src

COPY docker/config.toml /usr/share/edgeddns/config.toml
COPY docker/entrypoint.sh /usr/local/bin/edgeddns-entrypoint

USER edgeddns
VOLUME ["/config", "/data"]
ENV EDGEDDNS_CONFIG=/config/config.toml \
    PYTHONUNBUFFERED=1
ENTRYPOINT ["/usr/local/bin/edgeddns-entrypoint"]
CMD ["run"]
