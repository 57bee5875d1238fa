#!/usr/bin/env bash
# Builds and runs the portal on this machine: installs what is missing, builds the browser
# bundle and the server, then starts it. Without DATABASE_URL the portal runs its own
# private PostgreSQL in its data directory. Any arguments go to the portal
# (see `chatmail-portal --help`), e.g. `portal/run.sh --listen 0.0.0.0:8080`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

"$ROOT/portal/scripts/install-deps.sh"
"$ROOT/portal/scripts/build.sh" release
exec "$TARGET_DIR/release/chatmail-portal" "$@"
