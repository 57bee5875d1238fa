#!/usr/bin/env bash
# Installs what building and running the portal needs, and nothing twice:
# Debian packages (PostgreSQL server, C toolchain), the wasm32 Rust target, and the
# wasm-bindgen CLI at exactly the version Cargo.lock uses.
# Usage: install-deps.sh [extra Debian packages...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log() { printf '==> %s\n' "$*" >&2; }

# Debian packages ---------------------------------------------------------------------
want_packages=(postgresql ca-certificates pkg-config gcc "$@")
missing=()
for package in "${want_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null; then
        log "please install these packages with your system's package manager: ${missing[*]}"
        exit 1
    fi
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt may hold the lock for a moment (unattended upgrades); wait for it.
    "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
    "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust --------------------------------------------------------------------------------
if ! command -v cargo >/dev/null; then
    log "Rust is missing: install it from https://rustup.rs, then run this again"
    exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown Rust target"
    rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen CLI: must equal the wasm-bindgen crate in Cargo.lock, patch for patch.
wanted=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock")
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [[ "$have" != "$wanted" ]]; then
    log "installing wasm-bindgen-cli $wanted (takes a few minutes, once)"
    # Not --locked: the registry mirror may lack a locked dependency of the CLI.
    cargo install --quiet wasm-bindgen-cli --version "=$wanted" --force
fi
