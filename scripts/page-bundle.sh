#!/usr/bin/env bash
# Bundles the page's JavaScript modules that use npm packages (yjs) into files the node embeds
# and serves (crates/chroom-node/web/notes.js), with esbuild from npm: the page loads nothing
# from elsewhere at run time. With --check, fails if the committed bundle differs from what the
# sources bundle to.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x node_modules/.bin/esbuild && -d node_modules/yjs ]] || npm install --no-audit --no-fund --no-save --loglevel=error
web=crates/chroom-node/web
out=$web/notes.js
target=$out
if [[ "${1:-}" == "--check" ]]; then
    target=$(mktemp --suffix=.js)
    trap 'rm -f "$target"' EXIT
fi
node_modules/.bin/esbuild "$web/src/notes.mjs" --bundle --format=esm --minify \
    --target=chrome120,firefox115 --legal-comments=eof --log-level=warning --outfile="$target"
if [[ "${1:-}" == "--check" ]]; then
    if ! cmp -s "$target" "$out"; then
        echo "page-bundle: $out is stale: run scripts/page-bundle.sh and commit it" >&2
        exit 1
    fi
    echo "page-bundle: $out is fresh"
fi
