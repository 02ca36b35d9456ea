#!/usr/bin/env bash
# Builds and tests the Solidity contracts offline (forge from npm, solc = solcjs behind
# contracts/tools/solc), then writes the ABI + bytecode artifacts the Rust side reads.
# With --check, fails if the committed artifacts differ from what the sources compile to.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x node_modules/@foundry-rs/forge-linux-amd64/bin/forge ]] || npm install --no-audit --no-fund --no-save --loglevel=error
forge=$PWD/node_modules/@foundry-rs/forge-linux-amd64/bin/forge

cd contracts
"$forge" build --quiet
"$forge" test
mkdir -p artifacts
for contract in RoomRegistry:RoomRegistry TestTokens:TestERC20 TestTokens:TestERC721; do
    file=${contract%%:*}
    name=${contract##*:}
    node -e '
        const fs = require("fs");
        const out = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
        const artifact = {
            abi: out.abi,
            bytecode: out.bytecode.object,
            deployedBytecode: out.deployedBytecode.object,
        };
        fs.writeFileSync(process.argv[2], JSON.stringify(artifact, null, 2) + "\n");
    ' "out/$file.sol/$name.json" "artifacts/$name.json"
done
cd ..
if [[ "${1:-}" == "--check" ]]; then
    if ! git diff --quiet HEAD -- contracts/artifacts \
        || [[ -n "$(git ls-files --others --exclude-standard -- contracts/artifacts)" ]]; then
        git diff --stat HEAD -- contracts/artifacts >&2 || true
        echo "contracts: committed artifacts are stale; run scripts/contracts.sh and commit contracts/artifacts" >&2
        exit 1
    fi
    echo "contracts: artifacts are fresh"
fi
