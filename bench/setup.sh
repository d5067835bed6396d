#!/bin/sh
# Installs everything bench/incumbents.py compares, for a fresh Debian/Ubuntu
# machine. Benchmarks only: never run by the test suite or CI.
#
#   sudo bench/setup.sh            # apt packages (once) + the two venvs
#   sudo bench/.venv-peers/bin/python bench/incumbents.py
#
# - inadyn, ddclient (Debian packages), with a policy-rc.d that stops their
#   daemons from starting on install: the bench starts its own copies;
# - faketime, GNU time (peak RSS of a child without the parent's pages),
#   iproute2 and util-linux (unshare: the bench runs in its own network
#   namespace, so nothing can leave 127.0.0.1);
# - NewFuture/DDNS 4.2.0 (the "ddns" package) plus trustme, in bench/.venv-peers
#   (set DDNS_WHEEL=/path/to/ddns-4.2.0-*.whl to install from a local file);
# - edgeddns from this checkout, NON-editable, in bench/.venv-edge, so its
#   start-up is measured as users get it (re-run this script after changes).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PEERS=${PEERS_VENV:-$HERE/.venv-peers}
EDGE=${EDGE_VENV:-$HERE/.venv-edge}
PY=${PYTHON:-python3}

missing=""
for bin in inadyn ddclient faketime unshare ip; do
    command -v "$bin" >/dev/null 2>&1 || missing=1
done
[ -x /usr/bin/time ] || missing=1
if [ -n "$missing" ]; then
    created=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# bench/setup.sh: do not start daemons while installing\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created=1
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        inadyn ddclient faketime time iproute2 util-linux
    [ -n "$created" ] && rm -f /usr/sbin/policy-rc.d
    # Debian's packages may still have left a service enabled; the bench never needs it.
    if command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now inadyn.service ddclient.service >/dev/null 2>&1 || true
    fi
fi

[ -x "$PEERS/bin/python" ] || "$PY" -m venv "$PEERS"
"$PEERS/bin/pip" install -q "${DDNS_WHEEL:-ddns==4.2.0}" trustme

[ -x "$EDGE/bin/python" ] || "$PY" -m venv "$EDGE"
"$EDGE/bin/pip" install -q "$ROOT"
# Always replace the package itself so the venv holds the checkout as it is now.
"$EDGE/bin/pip" install -q --no-deps --force-reinstall "$ROOT"
rm -rf "$ROOT/build"
echo "bench/setup.sh: ready ($PEERS, $EDGE)"
