#!/bin/sh
# Container entrypoint: make sure there is a config, then run edgeddns.
#
# On first start /config is usually an empty volume: copy the default config
# there (owner-only, it will hold credentials), say so, and carry on with it.
# The default needs no account, so the container starts cleanly and the user
# edits /config/config.toml at leisure. Arguments are an edgeddns command
# ("run" by default); the config path reaches it as $EDGEDDNS_CONFIG.
set -eu

conf="${EDGEDDNS_CONFIG:-/config/config.toml}"
default="${EDGEDDNS_DEFAULT_CONFIG:-/usr/share/edgeddns/config.toml}"

if [ ! -e "$conf" ]; then
	if (umask 077 && cp "$default" "$conf") 2>/dev/null; then
		echo "edgeddns: no config found; wrote the default to $conf (edit it, then restart the container)" >&2
	else
		echo "edgeddns: no config at $conf, and cannot create one there" \
			"(mount a writable volume on $(dirname "$conf"), owned by uid $(id -u))" >&2
		exit 2
	fi
fi

export EDGEDDNS_CONFIG="$conf"
[ "$#" -gt 0 ] || set -- run
exec "${EDGEDDNS_BIN:-edgeddns}" "$@"
