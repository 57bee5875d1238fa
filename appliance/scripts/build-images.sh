#!/usr/bin/env bash
# Builds the chatmail relay base images: gokrazy disk images for amd64 (VMs and PCs) and
# the Raspberry Pi 4/5 (arm64), each with a manifest (version, target, size, sha256,
# partition offsets, pinned inputs). The portal personalizes these per download.
#
#   appliance/scripts/build-images.sh [--targets amd64,rpi] [--out DIR]
#
# Each image holds: the Linux kernel (and Pi firmware) from the Go module proxy, our init
# and gokrazy's dhcp/ntp/randomd, the launcher /user/chatmail, the Rust appliance (a static
# musl binary cross-compiled here with zig) and Maddy (appliance/maddy/build.sh).
#
# Caching: an image is rebuilt only when one of its inputs changed (the appliance and
# Maddy binaries, the Go programs, the module versions, the instance config, this script
# and the packer); the key is recorded in the manifest. Cargo and Go keep their own build
# caches, so a run where nothing changed takes seconds.
#
# Env: CHATMAIL_CACHE_DIR (default ~/.cache/chatmail): tools, build trees, and by default
#      the output (CHATMAIL_IMAGES_DIR, default $CHATMAIL_CACHE_DIR/images).
#      CHATMAIL_PERM_MIB: size of /perm in the base image (default 256; the device grows
#      it to fill its disk at first boot).
# Prints the output directory on stdout (the portal's --images-dir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${CHATMAIL_CACHE_DIR:-$HOME/.cache/chatmail}"
OUT="${CHATMAIL_IMAGES_DIR:-$CACHE/images}"
TARGETS="amd64,rpi"
PERM_MIB="${CHATMAIL_PERM_MIB:-256}"
GOKRAZY_DIR="$ROOT/appliance/gokrazy"

while [[ $# -gt 0 ]]; do
    case "$1" in
    --targets) TARGETS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "build-images.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

log() { printf '==> build-images: %s\n' "$*" >&2; }
die() { printf 'build-images: error: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null || die "go is not installed (needed for gokrazy's programs and the packer)"

# --- Tools -----------------------------------------------------------------------------
eval "$("$ROOT/appliance/scripts/install-cross.sh")"
export PATH="$CHATMAIL_ZIG_VENV/bin:$PATH" # cargo-zigbuild finds `python3 -m ziglang`

# systemd-boot lets amd64 images boot on UEFI machines too (gokrazy's own MBR loader
# covers legacy BIOS). Debian ships it as a plain EFI file; it is put into the FAT as a
# separate program (LGPL-2.1), never linked.
EFI_LOADER=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
if [[ ",$TARGETS," == *,amd64,* && ! -f "$EFI_LOADER" ]]; then
    if [[ "$(id -u)" == 0 ]]; then
        log "installing Debian's systemd-boot-efi (UEFI boot loader for amd64 images)"
        apt-get install -y -qq systemd-boot-efi >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get install -y -qq systemd-boot-efi >/dev/null; } ||
            log "systemd-boot-efi unavailable: amd64 images will boot with legacy BIOS only"
    fi
fi
[[ -f "$EFI_LOADER" ]] || EFI_LOADER=""

# --- Go programs and modules -----------------------------------------------------------
GOBUILD_ENV=(CGO_ENABLED=0 GOOS=linux GOFLAGS=-mod=mod)
(cd "$GOKRAZY_DIR" && go mod download) || die "go mod download failed in $GOKRAZY_DIR"
moddir() { (cd "$GOKRAZY_DIR" && go list -mod=mod -m -f '{{.Dir}}' "$1"); }
modver() { (cd "$GOKRAZY_DIR" && go list -mod=mod -m -f '{{.Version}}' "$1"); }

WORK="$CACHE/image-build"
mkdir -p "$WORK" "$OUT"
PACKER="$WORK/packer"
(cd "$GOKRAZY_DIR" && env "${GOBUILD_ENV[@]}" GOOS= go build -trimpath -o "$PACKER.tmp" ./cmd/packer) &&
    mv "$PACKER.tmp" "$PACKER"

APPLIANCE_VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
MADDY_VERSION="$(sed -n 's/^MADDY_VERSION="\(.*\)"/\1/p' "$ROOT/appliance/maddy/build.sh")"

build_target() {
    local target="$1" goarch triple kernel_mod firmware_mod="" efi=""
    case "$target" in
    amd64) goarch=amd64 triple=x86_64-unknown-linux-musl kernel_mod=github.com/gokrazy/kernel.amd64 efi="$EFI_LOADER" ;;
    rpi) goarch=arm64 triple=aarch64-unknown-linux-musl kernel_mod=github.com/gokrazy/kernel.rpi firmware_mod=github.com/gokrazy/firmware ;;
    *) die "unknown target $target (amd64, rpi)" ;;
    esac
    local config="$GOKRAZY_DIR/instances/$target/config.json"
    [[ -f "$config" ]] || die "missing instance config $config"

    log "$target: appliance for $triple (static musl, zig as the cross linker)"
    (cd "$ROOT" && "$CHATMAIL_CARGO_ZIGBUILD" zigbuild --quiet --release --locked \
        -p chatmail-appliance --target "$triple" --target-dir "$CACHE/appliance-target") ||
        die "cross-compiling the appliance for $triple failed"
    local appliance="$CACHE/appliance-target/$triple/release/chatmail-appliance"
    if readelf -l "$appliance" 2>/dev/null | grep -q INTERP; then
        die "$appliance is dynamically linked; gokrazy has no dynamic loader"
    fi

    log "$target: Maddy $MADDY_VERSION for $goarch"
    local maddy
    maddy="$(GOARCH="$goarch" CHATMAIL_CACHE_DIR="$CACHE" "$ROOT/appliance/maddy/build.sh")"

    log "$target: gokrazy programs for $goarch"
    local bindir="$WORK/$target/bin"
    mkdir -p "$bindir"
    (
        cd "$GOKRAZY_DIR"
        for prog in ./cmd/init ./cmd/chatmail github.com/gokrazy/gokrazy/cmd/dhcp \
            github.com/gokrazy/gokrazy/cmd/ntp github.com/gokrazy/gokrazy/cmd/randomd; do
            env "${GOBUILD_ENV[@]}" GOARCH="$goarch" go build -trimpath \
                -tags gokrazy,netgo,osusergo -o "$bindir/$(basename "$prog")" "$prog"
        done
    ) || die "building the gokrazy programs for $goarch failed"

    local kernel_dir firmware_dir=""
    kernel_dir="$(moddir "$kernel_mod")"
    [[ -n "$firmware_mod" ]] && firmware_dir="$(moddir "$firmware_mod")"

    # The cache key: everything that goes into the image, and what assembles it.
    local inputs=(
        "target=$target"
        "appliance_version=$APPLIANCE_VERSION"
        "appliance_sha256=$(sha "$appliance")"
        "maddy_version=$MADDY_VERSION"
        "maddy_sha256=$(sha "$maddy")"
        "kernel=$kernel_mod@$(modver "$kernel_mod")"
        "gokrazy=github.com/gokrazy/gokrazy@$(modver github.com/gokrazy/gokrazy)"
        "gokrazy_internal=github.com/gokrazy/internal@$(modver github.com/gokrazy/internal)"
        "perm_mib=$PERM_MIB"
    )
    [[ -n "$firmware_mod" ]] && inputs+=("firmware=$firmware_mod@$(modver "$firmware_mod")")
    [[ -n "$efi" ]] && inputs+=("efi_loader_sha256=$(sha "$efi")")
    local key
    key="$(
        {
            printf '%s\n' "${inputs[@]}"
            for f in "$bindir"/* "$config" "$0" "$GOKRAZY_DIR/go.sum" "$GOKRAZY_DIR"/cmd/packer/*.go; do
                echo "$(basename "$f") $(sha "$f")"
            done
        } | sha256sum | cut -c1-16
    )"
    local image="$OUT/chatmail-$target.img" manifest="$OUT/chatmail-$target.json"
    if [[ -f "$image" && -f "$manifest" ]] && grep -q "\"cache_key\": \"$key\"" "$manifest"; then
        log "$target: up to date ($image, key $key)"
        return
    fi

    log "$target: assembling the image"
    local args=(
        -config "$config" -target "$target" -bindir "$bindir"
        -kernel_dir "$kernel_dir" -perm_mib "$PERM_MIB"
        -version "$APPLIANCE_VERSION+$key"
        -file "/usr/local/bin/chatmail-appliance=$appliance:0755"
        -file "/usr/local/bin/maddy=$maddy:0755"
        -o "$image" -manifest "$manifest"
        -input "cache_key=$key"
    )
    [[ -n "$firmware_dir" ]] && args+=(-firmware_dir "$firmware_dir")
    [[ -n "$efi" ]] && args+=(-efi_loader "$efi")
    for kv in "${inputs[@]}"; do args+=(-input "$kv"); done
    "$PACKER" "${args[@]}" || die "packer failed for $target"
}

IFS=',' read -r -a target_list <<<"$TARGETS"
for t in "${target_list[@]}"; do
    build_target "$t"
done
echo "$OUT"
