#!/usr/bin/env bash
# Sets up everything and runs a local demo on a devnet: anvil with the room registry, a room
# "demo" that only its members may join, a bootstrap node, a publisher playing a test video,
# a member recording it (live frame counts) and a non-member that is refused with the reason.
# Output files land in .chroom/demo/out-*.  DEMO_SECONDS sets how long the recorders run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked --bin chroom
chroom=target/release/chroom
state=.chroom/demo
rm -rf "$state"
mkdir -p "$state"
pids=()
# A pipeline's $! is its last command (sed): also stop every child of this script (chroom).
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    pkill -P $$ 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_for() { # file pattern
    for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "demo: timed out waiting for '$2' in $1" >&2
    exit 1
}

"$chroom" devnet up --port "${DEMO_RPC_PORT:-8545}" --dir "$state/devnet" >"$state/devnet.out" 2>"$state/devnet.log" &
pids+=($!)
wait_for "$state/devnet.out" "devnet ready"
account() { grep "^account $1 " "$state/devnet.out" | cut -d' ' -f3; }
config() { echo "$state/devnet/node-$1.toml"; }
echo "demo: devnet up, registry $(grep '^registry' "$state/devnet.out" | cut -d' ' -f2)"

# Account 0 owns the room; 1 may speak (publish), 2 may listen; 3 is nobody.
"$chroom" room --config "$(config 0)" create demo --kind conference --policy allowlist
"$chroom" room --config "$(config 0)" grant demo "$(account 1)" speaker
"$chroom" room --config "$(config 0)" grant demo "$(account 2)" listener

"$chroom" node --config "$(config 0)" >"$state/bootstrap.out" 2>"$state/bootstrap.log" &
pids+=($!)
wait_for "$state/bootstrap.out" '^listen .*/tcp/'
boot=$(grep -m1 '^listen .*/tcp/' "$state/bootstrap.out" | cut -d' ' -f2)
echo "demo: bootstrap node at $boot"

"$chroom" publish --config "$(config 1)" --bootstrap "$boot" --room demo \
    --video fixtures/generated/video.ivf --audio fixtures/generated/audio.ogg \
    2>"$state/publisher.log" | sed 's/^/publisher: /' &
pids+=($!)

"$chroom" record --config "$(config 2)" --bootstrap "$boot" --room demo --out "$state/out-member" \
    --duration "${DEMO_SECONDS:-30}s" 2>"$state/member.log" | sed "s/^/member: /" &
member=$!
"$chroom" record --config "$(config 3)" --bootstrap "$boot" --room demo --out "$state/out-stranger" \
    --duration "${DEMO_SECONDS:-30}s" 2>"$state/stranger.log" | sed "s/^/non-member: /" &
stranger=$!
pids+=("$member" "$stranger")
wait "$member" "$stranger"
echo "demo: the member's recording:"
for f in "$state"/out-member/*; do
    printf '  %s: ' "$f"
    ffprobe -v error -show_entries stream=codec_name,nb_read_packets -count_packets -of csv=p=0 "$f"
done
echo "demo: the non-member recorded $(find "$state/out-stranger" -type f | wc -l) files"
