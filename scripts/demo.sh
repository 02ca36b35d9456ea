#!/usr/bin/env bash
# Chroom's main job on a local devnet: anvil with the room registry, a conference room "demo"
# only its members may join, a bootstrap node, three member nodes each serving its user's page,
# a publisher playing a test video into the room, and a non-member refused with the reason.
#
# With a terminal (and DEMO_SECONDS unset) it prints the three page links and runs until Ctrl-C:
# open them in Chromium or Firefox. Without one (DEMO_SECONDS set, or no terminal) it opens the
# pages in headless Chromium for DEMO_SECONDS (20 by default), prints what each page decoded of
# the others, saves screenshots in .chroom/demo/screenshots and exits (non-zero if a page did not
# play every other member). DEMO_PROFILE=dev uses a debug build (what the tests build; CI runs
# the demo so) instead of a release one.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
if [[ "${DEMO_PROFILE:-release}" == dev ]]; then
    cargo build --locked --bin chroom
    chroom=target/debug/chroom
else
    cargo build --release --locked --bin chroom
    chroom=target/release/chroom
fi
state=.chroom/demo
rm -rf "$state"
mkdir -p "$state/screenshots"
pids=()
# A pipeline's $! is its last command (sed): also stop every child of this script (chroom).
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    pkill -P $$ 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_for() { # file pattern
    for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "demo: timed out waiting for '$2' in $1" >&2
    exit 1
}

"$chroom" devnet up --port "${DEMO_RPC_PORT:-8545}" --dir "$state/devnet" >"$state/devnet.out" 2>"$state/devnet.log" &
pids+=($!)
wait_for "$state/devnet.out" "devnet ready"
account() { grep "^account $1 " "$state/devnet.out" | cut -d' ' -f3; }
config() { echo "$state/devnet/node-$1.toml"; }
echo "demo: devnet up, registry $(grep '^registry' "$state/devnet.out" | cut -d' ' -f2)"

# Account 0 owns the room; 1, 2 and 3 are the members with pages, 4 publishes a test video;
# 5 is nobody.
members=(1 2 3)
"$chroom" room --config "$(config 0)" create demo --kind conference --policy allowlist
for i in "${members[@]}" 4; do
    "$chroom" room --config "$(config 0)" grant demo "$(account "$i")" speaker
done

"$chroom" node --config "$(config 0)" >"$state/bootstrap.out" 2>"$state/bootstrap.log" &
pids+=($!)
wait_for "$state/bootstrap.out" '^listen .*/tcp/'
boot=$(grep -m1 '^listen .*/tcp/' "$state/bootstrap.out" | cut -d' ' -f2)
echo "demo: bootstrap node at $boot"

"$chroom" publish --config "$(config 4)" --bootstrap "$boot" --room demo \
    --video fixtures/generated/video.ivf --audio fixtures/generated/audio.ogg \
    >"$state/publisher.out" 2>"$state/publisher.log" &
pids+=($!)
echo "demo: $(account 4) publishes a test video into the room (a headless node)"

links=()
for i in "${members[@]}"; do
    "$chroom" node --config "$(config "$i")" --bootstrap "$boot" >"$state/member-$i.out" 2>"$state/member-$i.log" &
    pids+=($!)
    wait_for "$state/member-$i.out" '^web '
    links+=("$(grep -m1 '^web ' "$state/member-$i.out" | cut -d' ' -f2)")
done

# A non-member's node asks to join: every member's node checks the registry and refuses it.
"$chroom" record --config "$(config 5)" --bootstrap "$boot" --room demo --out "$state/out-stranger" \
    --duration 3s 2>"$state/stranger.log" | sed -n "s/^refused: /demo: a non-member's node was refused: /p" || true

echo "demo: the members' pages (each opens as its member; the room is at /r/demo):"
for n in "${!links[@]}"; do
    echo "  member $((n + 1)) ($(account "${members[$n]}")): ${links[$n]%%\?*}r/demo?${links[$n]#*\?}"
done

if [[ -z "${DEMO_SECONDS:-}" && -t 1 ]]; then
    echo "demo: open the links above in a browser; Ctrl-C stops everything"
    wait
else
    seconds=${DEMO_SECONDS:-20}
    echo "demo: no display; opening the pages in headless Chromium for ${seconds} s"
    node scripts/demo-pages.mjs demo "$seconds" "$state/screenshots" "${links[@]}"
fi
