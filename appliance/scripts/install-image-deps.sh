#!/usr/bin/env bash
# Installs what the image tests (tests/tests/images_*.rs) and the image benchmark need on a
# Debian machine, and nothing twice:
#   - Debian packages: QEMU for x86-64 (the boot test, software emulation), e2fsprogs
#     (mke2fs -d for the portal's /perm, e2fsck/debugfs in the tests), gzip/xz/zstd (the
#     tests decompress each download with the standard tools), curl (the benchmark's
#     client), systemd-boot-efi (the UEFI loader put into amd64 images), python3-venv (zig
#     comes from PyPI into a venv);
#   - the cross toolchain of appliance/scripts/install-cross.sh (Rust musl targets, zig,
#     cargo-zigbuild);
#   - Go: the gokrazy programs and Maddy need Go 1.24 or newer. An older `go` (Debian 12
#     ships 1.19) is not enough; then install Go from https://go.dev/dl/ into /usr/local/go.
#
#   appliance/scripts/install-image-deps.sh [--build]
#
# --build also builds the amd64 base image now (what the tests would do on their first run),
# so a CI log shows that time on its own line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
log() { printf '==> install-image-deps: %s\n' "$*" >&2; }

# socat: the guest reaches a test service on the host through a QEMU guestfwd command.
want=(qemu-system-x86 e2fsprogs gzip xz-utils zstd curl systemd-boot-efi python3-venv ca-certificates socat)
missing=()
for package in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
    "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null; then
    log "Go is missing: install Go 1.24 or newer (https://go.dev/dl/) into /usr/local/go"
    exit 1
fi
go_minor="$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
if [[ -z "$go_minor" || "$go_minor" -lt 24 ]]; then
    log "$(go env GOVERSION) is too old: the image build needs Go 1.24 or newer (https://go.dev/dl/)"
    exit 1
fi

"$ROOT/appliance/scripts/install-cross.sh" >/dev/null

if [[ "${1:-}" == "--build" ]]; then
    started=$(date +%s)
    images_dir="$("$ROOT/appliance/scripts/build-images.sh" --targets amd64 | tail -n 1)"
    log "amd64 base image ready in $(($(date +%s) - started)) s"
    # The only line on standard output: where the images are (the test command passes it on).
    echo "$images_dir"
fi
