// Three members' pages join one conference, each from its own node, and send their (fake)
// cameras and microphones. Each page then samples, for `watch_ms`, what it decodes of the
// others: per video stream the frames decoded (every 250 ms), per audio stream the samples.
//
// Input: { urls: [..3], room, watch_ms, screenshots }.
// Output: { pages: [{ videos: { mid: [framesDecoded…] }, audio: { mid: samples }, tiles }] }.
import { main, openPage, roomUrl } from "./lib.mjs";

const TIMEOUT = 45_000;
const SAMPLE_MS = 250;

async function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.chroom.playbackPc;
    if (!pc) return { videos: {}, audio: {} };
    const stats = await pc.getStats();
    const videos = {};
    const audio = {};
    stats.forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      if (r.kind === "video") videos[r.mid] = r.framesDecoded ?? 0;
      if (r.kind === "audio") audio[r.mid] = r.totalSamplesReceived ?? 0;
    });
    return { videos, audio };
  });
}

// What a page shows and holds, for failure messages.
async function describe(page) {
  return page.evaluate(() => {
    const s = window.chroom;
    return {
      error: document.querySelector("#error").hidden ? null : document.querySelector("#error").textContent,
      participants: s.participants.map((p) => p.peer_id),
      slotPeers: s.slotPeers,
      tracks: [...s.tracks.keys()],
      playback: s.playbackPc?.connectionState ?? null,
      publish: s.publishPc?.connectionState ?? null,
      videos: [...document.querySelectorAll("#grid video")].map((v) => ({ slot: v.dataset.slot, ready: v.readyState })),
    };
  });
}

main(async (browser, input) => {
  const pages = [];
  for (const url of input.urls) {
    pages.push(await openPage(browser, roomUrl(url, input.room)));
  }
  // Everyone sees the two others playing.
  for (const [i, page] of pages.entries()) {
    try {
      await page.waitForFunction(
        () => [...document.querySelectorAll("#grid video[data-slot]")].filter((v) => v.readyState >= 2).length === 2,
        null,
        { timeout: TIMEOUT },
      );
    } catch (error) {
      throw new Error(`page ${i} does not play two others: ${JSON.stringify(await describe(page))}`, { cause: error });
    }
  }
  const samples = pages.map(() => []);
  const rounds = Math.ceil(input.watch_ms / SAMPLE_MS);
  for (let round = 0; round < rounds; round++) {
    const seen = await Promise.all(pages.map(inbound));
    seen.forEach((s, i) => samples[i].push(s));
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }
  if (input.screenshots) {
    await pages[0].screenshot({ path: `${input.screenshots}/conference.png` });
  }
  return {
    sample_ms: SAMPLE_MS,
    pages: await Promise.all(
      pages.map(async (page, i) => {
        const videos = {};
        for (const s of samples[i]) {
          for (const [mid, frames] of Object.entries(s.videos)) (videos[mid] ??= []).push(frames);
        }
        return {
          videos,
          audio: samples[i].at(-1).audio,
          playing: await page.$$eval("#grid video[data-slot]", (vs) => vs.filter((v) => !v.paused).length),
          error: (await page.isVisible("#error")) ? await page.textContent("#error") : null,
        };
      }),
    ),
  };
});
