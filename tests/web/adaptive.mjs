// One member's page in a conference whose links the test shapes while it watches: it joins,
// sends its fake camera and microphone, and once it decodes every other member (`peers`) it
// writes the file `ready`. From then until the file `stop` appears it samples, every
// `sample_ms`, what it gets of each other member on its playback link: video frames decoded,
// the width of the last one, audio packets received, bytes received (video and audio), and
// whether its tile shows the "poor connection" mark. Times are Unix milliseconds, so the
// test can lay them beside the moments it changed the shaping.
//
// Input: { url, room, peers: [peer id…], ready, stop, sample_ms, timeout_ms }.
// Output: { self, samples: [{ t, peers: { <peer>: { frames, width, audio, bytes, poor } } }] }.
import { access, writeFile } from "node:fs/promises";

import { main, openPage, roomUrl } from "./lib.mjs";

// What the page gets of each of `peers`, by the slot showing it.
async function received(page, peers) {
  return page.evaluate(async (peers) => {
    const s = window.chroom;
    const seen = {};
    for (const peer of peers) {
      const tile = document.querySelector(`#grid [data-peer="${CSS.escape(peer)}"]`);
      seen[peer] = { frames: 0, width: 0, audio: 0, bytes: 0, poor: tile?.classList.contains("poor-connection") ?? false };
    }
    if (!s.playbackPc) return seen;
    const stats = await s.playbackPc.getStats();
    for (const peer of peers) {
      const slot = s.slotPeers.indexOf(peer);
      if (slot < 0 || !s.slots[slot]) continue;
      const { audioMid, videoMid } = s.slots[slot];
      stats.forEach((r) => {
        if (r.type !== "inbound-rtp") return;
        if (r.mid === videoMid) {
          seen[peer].frames = r.framesDecoded ?? 0;
          seen[peer].width = r.frameWidth ?? 0;
          seen[peer].bytes += r.bytesReceived ?? 0;
        }
        if (r.mid === audioMid) {
          seen[peer].audio = r.packetsReceived ?? 0;
          seen[peer].bytes += r.bytesReceived ?? 0;
        }
      });
    }
    return seen;
  }, peers);
}

const exists = (path) => access(path).then(() => true, () => false);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Three of these pages, five nodes and the chain share two cores: at Chromium's default 20 fps
// the machine itself delays packets enough for the nodes' delay-based estimates to dip. The
// fake camera runs at 10 fps here, unless CHROOM_LAB_CAMERA_FPS says otherwise (20 makes two
// top layers overflow the 500 kbit/s phase: docs/PERFORMANCE.md).
main(async (browser, input) => {
  const deadline = Date.now() + input.timeout_ms;
  const page = await openPage(browser, roomUrl(input.url, input.room));
  for (;;) {
    const seen = await received(page, input.peers);
    if (Object.values(seen).every((peer) => peer.frames > 0)) break;
    if (Date.now() > deadline) throw new Error(`never decoded every member: ${JSON.stringify(seen)}`);
    await sleep(input.sample_ms);
  }
  const self = await page.evaluate(() => window.chroom.self.peerId);
  await writeFile(input.ready, self);
  const samples = [];
  while (!(await exists(input.stop))) {
    if (Date.now() > deadline) throw new Error("the test never said stop");
    samples.push({ t: Date.now(), peers: await received(page, input.peers) });
    await sleep(input.sample_ms);
  }
  return { self, samples };
}, { cameraFps: Number(process.env.CHROOM_LAB_CAMERA_FPS ?? 10) });
