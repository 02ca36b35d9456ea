#!/usr/bin/env bash
# Core crates are sans-IO: their normal dependency trees must not contain an async runtime,
# a network stack, a WebRTC stack or a chain client.
set -euo pipefail
cd "$(dirname "$0")/.."
cores=(chroom-types chroom-proto chroom-room chroom-overlay)
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
exit $status
