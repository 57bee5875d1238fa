#!/usr/bin/env bash
# Builds Maddy, the mail server the appliance supervises, from the Go module proxy at the
# pinned version below, without cgo (as gokrazy builds it: SQLite is then the pure-Go
# modernc driver). Maddy is built as its own main module, so the `replace` directives in
# its go.mod apply exactly as upstream intends.
#
# Usage: appliance/maddy/build.sh            prints the path of the binary on stdout
# Env:   CHATMAIL_CACHE_DIR (default ~/.cache/chatmail): where the binary is kept, so a
#        second run returns at once.
#        GOARCH/GOOS may be set for cross builds (the binary name then carries them).
#
# Maddy is GPL-3.0; it runs as a separate program next to ours and is never linked in.
set -euo pipefail

# The newest release the Go module proxy serves here (v0.9.x is refused by the proxy).
MADDY_MODULE="github.com/foxcpp/maddy"
MADDY_VERSION="v0.8.2"

log() { printf 'maddy/build.sh: %s\n' "$*" >&2; }

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null || { log "go is not installed (needed to build Maddy)"; exit 1; }

cache="${CHATMAIL_CACHE_DIR:-$HOME/.cache/chatmail}/maddy/$MADDY_VERSION"
goos="$(go env GOOS)"
goarch="$(go env GOARCH)"
out="$cache/maddy-$goos-$goarch"

if [[ -x "$out" ]]; then
    echo "$out"
    exit 0
fi

mkdir -p "$cache"
log "downloading $MADDY_MODULE@$MADDY_VERSION from the Go module proxy"
src="$(go mod download -json "$MADDY_MODULE@$MADDY_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "$src" || ! -f "$src/go.mod" ]]; then
    log "go mod download did not give a source directory for $MADDY_MODULE@$MADDY_VERSION"
    exit 1
fi

work="$(mktemp -d "$cache/build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -R "$src/." "$work/"
chmod -R u+w "$work"

log "building (CGO_ENABLED=0, GOOS=$goos, GOARCH=$goarch); the first build takes a few minutes"
(
    cd "$work"
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
        -ldflags "-X github.com/foxcpp/maddy.Version=${MADDY_VERSION#v}" \
        -o "$work/maddy" ./cmd/maddy
)
mv "$work/maddy" "$out.tmp"
mv "$out.tmp" "$out"
log "built $out"
echo "$out"
