#!/usr/bin/env bash
# Builds the portal: the browser bundle (WASM, hashed file names, a manifest) into
# <target>/site, then the server binary. Run install-deps.sh first.
# Usage: build.sh [release|debug]   (the server's profile; the bundle is always optimized)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PROFILE="${1:-release}"
SITE="$TARGET_DIR/site"
cd "$ROOT"

log() { printf '==> %s\n' "$*" >&2; }

log "building the browser bundle"
# Its own target directory, so the server's and the browser's feature sets never
# invalidate each other's builds.
cargo build --quiet -p chatmail-portal-frontend --lib --target wasm32-unknown-unknown \
    --profile wasm-release --target-dir "$TARGET_DIR/front"

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
wasm-bindgen --target web --no-typescript --out-dir "$staging" --out-name portal \
    "$TARGET_DIR/front/wasm32-unknown-unknown/wasm-release/chatmail_portal_frontend.wasm"

# Name each file after its content so browsers may cache it for a year.
hash_of() { sha256sum "$1" | cut -c1-16; }
js_name="portal.$(hash_of "$staging/portal.js").js"
wasm_name="portal_bg.$(hash_of "$staging/portal_bg.wasm").wasm"

rm -rf "$SITE.new"
mkdir -p "$SITE.new/pkg"
cp "$staging/portal.js" "$SITE.new/pkg/$js_name"
cp "$staging/portal_bg.wasm" "$SITE.new/pkg/$wasm_name"
if [[ -d "$staging/snippets" ]]; then cp -r "$staging/snippets" "$SITE.new/pkg/"; fi
# Precompressed copies; the server sends them to browsers that accept gzip.
find "$SITE.new/pkg" -type f \( -name '*.js' -o -name '*.wasm' \) -exec gzip -9 -k {} \;
cat > "$SITE.new/manifest.json" <<JSON
{"js": "/pkg/$js_name", "wasm": "/pkg/$wasm_name"}
JSON
rm -rf "$SITE"
mv "$SITE.new" "$SITE"
log "bundle: $(du -h "$SITE/pkg/$wasm_name" | cut -f1) wasm, $(du -h "$SITE/pkg/$wasm_name.gz" | cut -f1) gzipped"

log "building the portal server ($PROFILE)"
if [[ "$PROFILE" == "release" ]]; then
    cargo build --quiet -p chatmail-portal --release
else
    cargo build --quiet -p chatmail-portal
fi
