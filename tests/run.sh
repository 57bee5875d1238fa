#!/usr/bin/env bash
# Runs every test of the project on this machine: installs what the tests need (Debian
# packages, Rust targets, the pinned wasm-bindgen CLI), builds the browser bundle and the
# portal, checks formatting and lints, then runs the whole test suite. Safe to re-run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# One build per run: incremental state only costs time and disk here (set it to 1 to keep it).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cd "$ROOT"

log() { printf '==> %s\n' "$*" >&2; }
started=$(date +%s)

# Test-only tools: Chromium and its WebDriver (Debian's, never a downloaded browser), two
# independent zone checkers for the exported zone files, and the DNS servers the portal
# writes to in the tests (PowerDNS with its sqlite backend, Knot).
"$ROOT/portal/scripts/install-deps.sh" chromium chromium-driver bind9-utils knot-dnssecutils \
    pdns-server pdns-backend-sqlite3 knot
# The relay's real parts: Pebble (ACME), Delta Chat clients (PyPI), Maddy (Go module proxy).
"$ROOT/appliance/scripts/install-test-deps.sh" >/dev/null
# The device images: QEMU, e2fsprogs, compressors, the musl cross toolchain (zig from PyPI,
# cargo-zigbuild); then the amd64 base image, built once and cached between runs.
image_started=$(date +%s)
images_dir="$("$ROOT/appliance/scripts/install-image-deps.sh" --build | tail -n 1)"
log "image tools and amd64 base image ready in $(( $(date +%s) - image_started )) s"
# The image tests use this image instead of asking the build script again per test binary.
if [[ -f "$images_dir/chatmail-amd64.img" ]]; then
    export CHATMAIL_TEST_IMAGES_DIR="$images_dir"
fi
for component in rustfmt clippy; do
    if ! rustup component list --installed | grep -q "^$component"; then
        rustup component add "$component"
    fi
done
# Reuse a compiler cache when the machine has one.
if [[ -z "${RUSTC_WRAPPER:-}" ]] && command -v sccache >/dev/null; then
    export RUSTC_WRAPPER=sccache
fi

log "formatting"
cargo fmt --all --check

"$ROOT/portal/scripts/build.sh" debug

log "lints"
cargo clippy --quiet --all-targets -- -D warnings

log "building the appliance"
cargo build --quiet -p chatmail-appliance

log "tests"
export CHATMAIL_PORTAL_BIN="$CARGO_TARGET_DIR/debug/chatmail-portal"
export CHATMAIL_APPLIANCE_BIN="$CARGO_TARGET_DIR/debug/chatmail-appliance"
cargo test --quiet --no-fail-fast

log "all tests passed in $(( $(date +%s) - started )) s"
