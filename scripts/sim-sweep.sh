#!/usr/bin/env bash
# Runs the broadcast-tree simulator for many seeds and reports the ones that fail.
#   scripts/sim-sweep.sh [FIRST_SEED] [COUNT] [SCALE_DOWN]
# SCALE_DOWN 1 is the full acceptance run (100 000 viewers, 2 000 relayers; ~30 s each).
# Reports and plots land in target/sim/seed-N/.
set -euo pipefail
cd "$(dirname "$0")/.."
first=${1:-1}
count=${2:-20}
scale=${3:-10}
cargo build --release --locked -p chroom-sim
failed=()
for ((seed = first; seed < first + count; seed++)); do
    out=target/sim/seed-$seed
    if ./target/release/chroom-sim --seed "$seed" --scale-down "$scale" --out "$out" > /dev/null 2>&1; then
        echo "seed $seed: pass ($(grep -E '^(join|repair):' "$out/report.txt" | tr -s ' ' | paste -sd ' ' -))"
    else
        echo "seed $seed: FAIL (see $out/report.txt)"
        failed+=("$seed")
    fi
done
if ((${#failed[@]})); then
    echo "failing seeds: ${failed[*]}"
    exit 1
fi
echo "all $count seeds pass"
