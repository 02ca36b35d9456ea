#!/usr/bin/env bash
# Installs what Chroom needs on a fresh Debian machine with a Rust toolchain, then builds it.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
# The page tests drive Debian's Chromium (headless, fake camera and microphone).
[[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
# ... and Debian's Firefox ESR (headless over WebDriver BiDi, fake media from its prefs).
[[ -x /usr/bin/firefox-esr ]] || need_apt+=(firefox-esr)
# Headless Firefox has no screen to share: the Firefox screen-share test gives it a virtual
# display (Xvfb, run by xvfb-run).
command -v xvfb-run >/dev/null || need_apt+=(xvfb xauth)
# The network lab (tests/src/lab.rs) builds NAT routers with nftables and forgets their
# mappings with conntrack.
command -v nft >/dev/null || need_apt+=(nftables)
command -v conntrack >/dev/null || need_apt+=(conntrack)
# tests/interop/aiortc_page.py runs aiortc (a WebRTC stack that is no browser) from PyPI.
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
if ((${#need_apt[@]})); then
    echo "setup: installing ${need_apt[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# forge, anvil and solcjs come from npm, pinned to exact versions in package.json.
if [[ ! -x node_modules/@foundry-rs/forge-linux-amd64/bin/forge || ! -d node_modules/solc \
    || ! -d node_modules/playwright-core || ! -d node_modules/puppeteer-core \
    || ! -d node_modules/yjs || ! -x node_modules/.bin/esbuild ]]; then
    echo "setup: installing npm tools (forge, anvil, solc, playwright-core, puppeteer-core, yjs, esbuild)"
    # `npm ci` rejects this lock: the registry has no entries for the other platforms'
    # optional binaries. `install --no-save` honours the exact pins and leaves the lock alone.
    npm install --no-audit --no-fund --no-save --loglevel=error
fi

# aiortc and aiohttp for the page API interop test, pinned. Debian's Python refuses pip
# installs outside a virtualenv unless told (PEP 668); this machine is a test machine.
if ! python3 -c "import aiortc, aiohttp" 2>/dev/null; then
    echo "setup: installing aiortc and aiohttp from PyPI"
    pip_install=(python3 -m pip install --quiet --no-input aiortc==1.16.0 aiohttp==3.14.5)
    "${pip_install[@]}" 2>/dev/null || "${pip_install[@]}" --break-system-packages
fi

if ! command -v cargo-nextest >/dev/null; then
    echo "setup: installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

bash scripts/fixtures.sh fixtures/generated
