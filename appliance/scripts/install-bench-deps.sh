#!/usr/bin/env bash
# Installs what the port-443 multiplexer benchmark (appliance/benches/alpn_mux.rs) compares
# against: Debian's nginx with its stream module (ssl_preread), which upstream chatmail
# uses on port 443. The benchmark starts nginx itself on loopback with a generated
# configuration; the package's own service is neither wanted nor left running.
# Idempotent: nothing happens when both are installed.
set -euo pipefail

log() { printf '==> install-bench-deps: %s\n' "$*" >&2; }

STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
if [[ -x /usr/sbin/nginx && -f "$STREAM_MODULE" ]]; then
    log "nginx and its stream module are installed"
    exit 0
fi

if [[ "$(id -u)" == 0 ]]; then SUDO=(); else SUDO=(sudo); fi
log "installing Debian's nginx and libnginx-mod-stream"
"${SUDO[@]}" apt-get update -qq
# RUNLEVEL=1: the package scripts do not start the system service (invoke-rc.d).
"${SUDO[@]}" env RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends nginx libnginx-mod-stream >/dev/null
# Where the service started anyway (no init system to ask), stop it again.
if [[ -s /run/nginx.pid ]]; then
    "${SUDO[@]}" /usr/sbin/nginx -s quit 2>/dev/null || true
fi
log "nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*\///') with $STREAM_MODULE"
