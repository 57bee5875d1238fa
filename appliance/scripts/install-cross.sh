#!/usr/bin/env bash
# Installs what the static musl builds of the appliance need, all from registries:
#   - the Rust standard libraries for x86_64- and aarch64-unknown-linux-musl (rustup);
#   - zig from PyPI (the `ziglang` wheel) as the C cross compiler and linker, because ring
#     compiles C and assembly for its target;
#   - cargo-zigbuild from crates.io, which drives cargo with zig as the linker.
# Idempotent: each step is skipped when its result is already there. Everything lives under
# ${CHATMAIL_CACHE_DIR:-~/.cache/chatmail}, outside the clone.
#
# Prints the environment the image build reads, e.g.
#   CHATMAIL_ZIG_VENV=/root/.cache/chatmail/zig-0.15.2
#   CHATMAIL_CARGO_ZIGBUILD=/root/.cache/chatmail/cargo-zigbuild-0.24.1/bin/cargo-zigbuild
set -euo pipefail

CACHE="${CHATMAIL_CACHE_DIR:-$HOME/.cache/chatmail}"
# Pinned: cargo-zigbuild 0.24.1 is tested with zig 0.15.2 here.
ZIG_VERSION="0.15.2"
ZIGBUILD_VERSION="0.24.1"
ZIG_VENV="$CACHE/zig-$ZIG_VERSION"
ZIGBUILD_ROOT="$CACHE/cargo-zigbuild-$ZIGBUILD_VERSION"
TARGETS=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

log() { printf '==> install-cross: %s\n' "$*" >&2; }

installed="$(rustup target list --installed)"
for t in "${TARGETS[@]}"; do
    if ! grep -qx "$t" <<<"$installed"; then
        log "rustup target add $t"
        rustup target add "$t" >&2
    fi
done

if ! "$ZIG_VENV/bin/python" -m ziglang version 2>/dev/null | grep -qx "$ZIG_VERSION"; then
    log "installing zig $ZIG_VERSION from PyPI into $ZIG_VENV"
    rm -rf "$ZIG_VENV"
    python3 -m venv "$ZIG_VENV"
    "$ZIG_VENV/bin/pip" install --quiet --disable-pip-version-check "ziglang==$ZIG_VERSION"
fi

if ! "$ZIGBUILD_ROOT/bin/cargo-zigbuild" --version 2>/dev/null | grep -q "$ZIGBUILD_VERSION"; then
    log "installing cargo-zigbuild $ZIGBUILD_VERSION from crates.io (a few minutes the first time)"
    cargo install --quiet --locked cargo-zigbuild --version "$ZIGBUILD_VERSION" --root "$ZIGBUILD_ROOT"
fi

echo "CHATMAIL_ZIG_VENV=$ZIG_VENV"
echo "CHATMAIL_CARGO_ZIGBUILD=$ZIGBUILD_ROOT/bin/cargo-zigbuild"
