// One member's page in a call with a member elsewhere (another home, behind another NAT): it
// joins the room, sends its fake camera and microphone, and waits until it decodes `frames`
// video frames and `audio_samples` audio samples of the other member's (the slot showing
// `peer`), measured on the page's playback link. The call is over for this page only once the
// other page has decoded as much too: each page writes the file `done` when it has, and waits
// for every file in `others_done` before it leaves (closing early would end the other's
// call before it has seen enough).
//
// Input: { url, room, peer, frames, audio_samples, done, others_done: [..], timeout_ms }.
// Output: { self, joined_ms, first_frame_ms, decoded_ms, video_frames, audio_samples,
//           publish, playback, samples: [{ t_ms, frames, audio }] }.
import { access, writeFile } from "node:fs/promises";

import { main, openPage, roomUrl } from "./lib.mjs";

const SAMPLE_MS = 250;

// What the page decodes of `peer`, and the state of its links.
async function decoded(page, peer) {
  return page.evaluate(async (peer) => {
    const s = window.chroom;
    const seen = { frames: 0, audio: 0, publish: s.publishPc?.connectionState ?? null, playback: s.playbackPc?.connectionState ?? null };
    const slot = s.slotPeers.indexOf(peer);
    if (slot < 0 || !s.slots[slot] || !s.playbackPc) return seen;
    const { audioMid, videoMid } = s.slots[slot];
    const stats = await s.playbackPc.getStats();
    stats.forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      if (r.mid === videoMid) seen.frames = r.framesDecoded ?? 0;
      if (r.mid === audioMid) seen.audio = r.totalSamplesReceived ?? 0;
    });
    return seen;
  }, peer);
}

// What the page shows and holds, for failure messages.
async function describe(page) {
  return page.evaluate(() => {
    const s = window.chroom;
    return {
      error: document.querySelector("#error").hidden ? null : document.querySelector("#error").textContent,
      self: s.self?.peerId ?? null,
      participants: s.participants.map((p) => p.peer_id),
      slotPeers: s.slotPeers,
      publish: s.publishPc?.connectionState ?? null,
      playback: s.playbackPc?.connectionState ?? null,
    };
  });
}

const exists = (path) => access(path).then(() => true, () => false);

main(async (browser, input) => {
  const started = Date.now();
  const deadline = started + input.timeout_ms;
  const page = await openPage(browser, roomUrl(input.url, input.room));
  await page.waitForFunction(() => window.chroom?.publishPc?.connectionState === "connected", null, {
    timeout: input.timeout_ms,
  }).catch(async (error) => {
    throw new Error(`the page's camera never reached its node: ${JSON.stringify(await describe(page))}`, { cause: error });
  });
  const joined = Date.now() - started;
  const samples = [];
  let firstFrame = null;
  for (;;) {
    const seen = await decoded(page, input.peer);
    const t = Date.now() - started;
    samples.push({ t_ms: t, frames: seen.frames, audio: seen.audio });
    if (firstFrame === null && seen.frames > 0) firstFrame = t;
    if (seen.frames >= input.frames && seen.audio >= input.audio_samples) break;
    if (Date.now() > deadline) {
      throw new Error(`decoded too little of ${input.peer}: ${JSON.stringify({ seen, page: await describe(page), samples: samples.slice(-8) })}`);
    }
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }
  const decodedAt = Date.now() - started;
  const last = await decoded(page, input.peer);
  const self = await page.evaluate(() => window.chroom.self.peerId);
  await writeFile(input.done, self);
  // Keep sending until the other page has seen enough of this one.
  for (const other of input.others_done) {
    while (!(await exists(other))) {
      if (Date.now() > deadline) throw new Error(`${other} never appeared: the other page did not decode enough`);
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
  }
  return {
    self,
    joined_ms: joined,
    first_frame_ms: firstFrame,
    decoded_ms: decodedAt,
    video_frames: last.frames,
    audio_samples: last.audio,
    publish: last.publish,
    playback: last.playback,
    samples,
  };
});
