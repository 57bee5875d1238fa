#!/usr/bin/env bash
# Installs what the appliance's end-to-end tests need, all real programs:
#   - Pebble and pebble-challtestsrv (Debian's `pebble` package), the test ACME CA;
#   - a Python venv with deltachat-rpc-server and deltachat-rpc-client from PyPI, pinned;
#   - Maddy, built from the Go module proxy at the pinned version (appliance/maddy/build.sh).
# Idempotent: each step is skipped when its result is already there. Caches live outside the
# clone, under ${CHATMAIL_CACHE_DIR:-~/.cache/chatmail}.
#
# At the end it prints the environment the tests read, e.g.
#   CHATMAIL_MADDY_BIN=/root/.cache/chatmail/maddy/v0.8.2/maddy-linux-amd64
#   CHATMAIL_DELTACHAT_VENV=/root/.cache/chatmail/deltachat-venv-2.65.0
# The tests find both at these default places without the variables, too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${CHATMAIL_CACHE_DIR:-$HOME/.cache/chatmail}"
# Pinned: the newest release on PyPI when this was written; client and server must match.
DELTACHAT_VERSION="2.65.0"
VENV="$CACHE/deltachat-venv-$DELTACHAT_VERSION"

log() { printf '==> install-test-deps: %s\n' "$*" >&2; }

# --- Pebble (Debian) -------------------------------------------------------------------
if [[ ! -x /usr/bin/pebble || ! -x /usr/bin/pebble-challtestsrv ]]; then
    log "installing Debian's pebble"
    if [[ "$(id -u)" == 0 ]]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq pebble >/dev/null
fi

# --- Delta Chat RPC server and client (PyPI) -------------------------------------------
if [[ ! -x "$VENV/bin/deltachat-rpc-server" ]] ||
    ! "$VENV/bin/python" -c 'import deltachat_rpc_client' 2>/dev/null; then
    log "creating $VENV with deltachat-rpc-server and deltachat-rpc-client $DELTACHAT_VERSION"
    mkdir -p "$CACHE"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "deltachat-rpc-server==$DELTACHAT_VERSION" "deltachat-rpc-client==$DELTACHAT_VERSION"
fi

# --- Maddy (Go module proxy) -----------------------------------------------------------
maddy="$(CHATMAIL_CACHE_DIR="$CACHE" "$ROOT/appliance/maddy/build.sh")"

echo "CHATMAIL_MADDY_BIN=$maddy"
echo "CHATMAIL_DELTACHAT_VENV=$VENV"
