#!/usr/bin/env bash
# Sets up a fresh machine and runs every check and test Chroom has. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== format"
cargo fmt --all --check

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== layering"
bash scripts/check-layering.sh

echo "== contracts (forge build + test, artifact freshness)"
bash scripts/contracts.sh --check

echo "== page bundle freshness"
bash scripts/page-bundle.sh --check

echo "== tests"
# A failed test's panic message is the last thing it prints (no backtrace after it), so the
# tail of a CI log says what failed.
RUST_BACKTRACE=0 cargo nextest run --workspace --locked --profile ci

echo "== the demo (README's first command), headless"
DEMO_SECONDS=8 DEMO_PROFILE=dev bash scripts/demo.sh

echo "== doc tests"
cargo test --workspace --locked --doc

echo "== fuzz targets (bounded, unoptimized builds: half the build time)"
bash scripts/fuzz.sh 20 --dev
