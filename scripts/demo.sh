#!/usr/bin/env bash
# Sets up everything and runs a local demo: 4 nodes on loopback, one publishing a test video,
# two recording it (printing live frame counts), found through the DHT via one bootstrap node.
# Ctrl-C stops it all. Output files land in .chroom/demo/out-*.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked --bin chroom
chroom=target/release/chroom
state=.chroom/demo
rm -rf "$state"
mkdir -p "$state"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$chroom" node --config node-config/dev.toml --data-dir "$state/bootstrap" >"$state/bootstrap.out" 2>"$state/bootstrap.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listen .*/tcp/' "$state/bootstrap.out" 2>/dev/null && break; sleep 0.1; done
boot=$(grep -m1 '^listen .*/tcp/' "$state/bootstrap.out" | cut -d' ' -f2)
echo "demo: bootstrap node at $boot"

"$chroom" publish --config node-config/dev.toml --data-dir "$state/publisher" --bootstrap "$boot" \
    --room demo --video fixtures/generated/video.ivf --audio fixtures/generated/audio.ogg \
    2>"$state/publisher.log" | sed 's/^/publisher: /' &
pids+=($!)

for i in 1 2; do
    "$chroom" record --config node-config/dev.toml --data-dir "$state/recorder-$i" --bootstrap "$boot" \
        --room demo --out "$state/out-$i" --duration "${DEMO_SECONDS:-30}s" \
        2>"$state/recorder-$i.log" | sed "s/^/recorder $i: /" &
    pids+=($!)
done
wait "${pids[-1]}" "${pids[-2]}"
echo "demo: recordings:"
for f in "$state"/out-*/*; do
    printf '  %s: ' "$f"
    ffprobe -v error -show_entries stream=codec_name,nb_read_packets -count_packets -of csv=p=0 "$f"
done
