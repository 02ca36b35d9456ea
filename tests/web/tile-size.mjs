// Two members' pages in a call; the second page's window starts small. Each page tells its
// node how tall it shows the other member's camera, and that member's node sends the smallest
// simulcast layer at least that tall. The second page samples the width of the first member's
// video it decodes while small, then grows its window and samples again.
//
// Input: { urls: [a, b], room, peer_a, peer_b, small: { width, height }, settle_ms, timeout_ms,
//          engine_b: "chromium" | "firefox" }.
// Output: { small_width, large_width, large_after_ms, a_sees_b_width }.
import { main, openPage, roomUrl } from "./lib.mjs";

// The width of the last frame `page` decoded of `peer`, or 0.
async function decodedWidth(page, peer) {
  return page.evaluate(async (peer) => {
    const s = window.chroom;
    const slot = s.slotPeers.indexOf(peer);
    if (slot < 0 || !s.slots[slot] || !s.playbackPc) return 0;
    let width = 0;
    (await s.playbackPc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.mid === s.slots[slot].videoMid) width = r.frameWidth ?? 0;
    });
    return width;
  }, peer);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Waits until `page` decodes `peer` at a width `accept` takes; returns that width.
async function waitForWidth(page, peer, accept, deadline, what) {
  for (;;) {
    const width = await decodedWidth(page, peer);
    if (accept(width)) return width;
    if (Date.now() > deadline) throw new Error(`${what}: decoding at width ${width}`);
    await sleep(200);
  }
}

main(async (browser, input) => {
  const deadline = Date.now() + input.timeout_ms;
  const a = await openPage(browser, roomUrl(input.urls[0], input.room));
  const b = await openPage(browser, roomUrl(input.urls[1], input.room), { engine: input.engine_b ?? "chromium" });
  await b.setViewportSize(input.small);
  await waitForWidth(b, input.peer_a, (w) => w > 0, deadline, "the small page never played A");
  // Let the size reach A's node and the layer switch settle.
  await sleep(input.settle_ms);
  const smallWidth = await decodedWidth(b, input.peer_a);
  await b.setViewportSize({ width: 1280, height: 800 });
  const grown = Date.now();
  const largeWidth = await waitForWidth(b, input.peer_a, (w) => w > smallWidth, deadline, "after growing");
  const largeAfter = Date.now() - grown;
  // A's window was large all along: it gets B's top layer (waiting out a dip of the link's
  // estimate on a busy machine).
  const seesB = await waitForWidth(a, input.peer_b, (w) => w >= 640, deadline, "A never got B's top layer");
  return { small_width: smallWidth, large_width: largeWidth, large_after_ms: largeAfter, a_sees_b_width: seesB };
});
