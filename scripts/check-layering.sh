#!/usr/bin/env bash
# Core crates are sans-IO: their normal dependency trees must not contain an async runtime,
# a network stack, a WebRTC stack or a chain client. The node crate's modules form no cycle.
set -euo pipefail
cd "$(dirname "$0")/.."
cores=(chroom-types chroom-proto chroom-room chroom-overlay chroom-docs)
forbidden='^(tokio|libp2p|libp2p-[a-z-]+|str0m|alloy|alloy-[a-z-]+|mio|socket2) '
status=0
for core in "${cores[@]}"; do
    offenders=$(cargo tree --locked -e normal -p "$core" --prefix none --format '{p}' | sort -u | grep -E "$forbidden" || true)
    if [[ -n "$offenders" ]]; then
        echo "layering: $core depends on IO crates:" >&2
        echo "$offenders" | sed 's/^/  /' >&2
        status=1
    fi
done
if ((status == 0)); then echo "layering: ${cores[*]} are free of IO dependencies"; fi

# The node's runtime is translation split by concern: no module cycle, no file past 800 lines.
python3 scripts/check-modules.py crates/chroom-node/src 800 || status=1
exit $status
