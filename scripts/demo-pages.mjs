// The demo without a display: opens each member's page (headless Chromium, fake camera and
// microphone) in the room, watches for `seconds`, then prints what each page decoded of every
// other member and saves a screenshot of each. Exits 1 when a page does not play everyone.
//
// Usage: node scripts/demo-pages.mjs <room> <seconds> <screenshot dir> <page link>...
import { describeCall, launch, openPage, roomUrl } from "../tests/web/lib.mjs";

const [room, seconds, shots, ...links] = process.argv.slice(2);
const TIMEOUT = 45_000;

// Per video tile a page shows: who it is, and the frames its playback link decoded for it.
async function tiles(page) {
  return page.evaluate(async () => {
    const s = window.chroom;
    const decoded = new Map();
    (await s.playbackPc?.getStats())?.forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") decoded.set(r.mid, r.framesDecoded ?? 0);
    });
    return s.slotPeers.flatMap((peer, slot) => {
      if (!peer || !s.slots[slot]) return [];
      const account = s.participants.find((p) => p.peer_id === peer)?.account ?? null;
      return [{ peer, account, frames: decoded.get(s.slots[slot].videoMid) ?? 0 }];
    });
  });
}

const short = (id) => (id ? `${id.slice(0, 6)}…${id.slice(-4)}` : "?");

const browser = await launch();
let failed = false;
try {
  const pages = [];
  for (const link of links) pages.push(await openPage(browser, roomUrl(link, room)));
  // Every page shows the other pages' members and the publisher.
  const others = links.length;
  for (const [i, page] of pages.entries()) {
    await page
      .waitForFunction(
        (n) => [...document.querySelectorAll("#grid video[data-slot]")].filter((v) => v.readyState >= 2).length >= n,
        others,
        { timeout: TIMEOUT },
      )
      .catch(async () => {
        console.log(`page ${i + 1}: does not play ${others} others within ${TIMEOUT / 1000} s: ${JSON.stringify(await describeCall(page))}`);
        failed = true;
      });
  }
  const before = await Promise.all(pages.map(tiles));
  await new Promise((resolve) => setTimeout(resolve, Number(seconds) * 1000));
  const after = await Promise.all(pages.map(tiles));
  for (const [i, page] of pages.entries()) {
    const path = `${shots}/page-${i + 1}.png`;
    await page.screenshot({ path });
    console.log(`page ${i + 1} (${links[i].split("?")[0]}), screenshot ${path}:`);
    for (const tile of after[i]) {
      const earlier = before[i].find((t) => t.peer === tile.peer)?.frames ?? 0;
      const fps = (tile.frames - earlier) / Number(seconds);
      console.log(`  ${tile.account ?? short(tile.peer)}: ${tile.frames} frames decoded (${fps.toFixed(1)} fps over the last ${seconds} s)`);
      if (fps < 5) failed = true;
    }
    if (after[i].length < others) failed = true;
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
