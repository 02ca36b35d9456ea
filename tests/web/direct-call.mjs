// One side of a direct Chromium-to-Chromium call, with no Chroom node in the way: the anchor
// the adaptive-quality bench sets Chroom's figures beside (libwebrtc adapting on its own). Each
// side sends its fake camera (one encoding, as a 1:1 call sends) and microphone; the two
// exchange offer and answer as files in `dir` (ICE gathered first, so no trickling). Once the
// page decodes the other side it writes `ready`; then, until `stop` appears, it samples every
// `sample_ms` what it decodes: frames, the width of the last one, and the bytes received.
//
// The page is served from 127.0.0.1 by this script (a secure context, as getUserMedia needs).
//
// Input: { role: "caller" | "callee", dir, ready, stop, sample_ms, timeout_ms }.
// Output: { samples: [{ t, frames, width, bytes }] }.
import { createServer } from "node:http";
import { access, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { main } from "./lib.mjs";

const exists = (path) => access(path).then(() => true, () => false);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForFile(path, deadline) {
  while (!(await exists(path))) {
    if (Date.now() > deadline) throw new Error(`${path} never appeared`);
    await sleep(100);
  }
  return readFile(path, "utf8");
}

main(async (browser, input) => {
  const deadline = Date.now() + input.timeout_ms;
  const server = createServer((_, res) => res.end("<!doctype html><title>direct call</title>"));
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.evaluate(async () => {
      const stream = await navigator.mediaDevices.getUserMedia({
        video: { width: 640, height: 360 },
        audio: true,
      });
      const pc = new RTCPeerConnection();
      for (const track of stream.getTracks()) pc.addTrack(track, stream);
      window.pc = pc;
    });
    // Offer and answer with every candidate in them.
    const described = (create) =>
      page.evaluate(async (create) => {
        const pc = window.pc;
        await pc.setLocalDescription(create === "offer" ? await pc.createOffer() : await pc.createAnswer());
        while (pc.iceGatheringState !== "complete") await new Promise((r) => setTimeout(r, 50));
        return pc.localDescription.sdp;
      }, create);
    const accept = (type, sdp) => page.evaluate(({ type, sdp }) => window.pc.setRemoteDescription({ type, sdp }), { type, sdp });
    if (input.role === "caller") {
      await writeFile(join(input.dir, "offer"), await described("offer"));
      await accept("answer", await waitForFile(join(input.dir, "answer"), deadline));
    } else {
      await accept("offer", await waitForFile(join(input.dir, "offer"), deadline));
      await writeFile(join(input.dir, "answer"), await described("answer"));
    }
    const received = () =>
      page.evaluate(async () => {
        const seen = { frames: 0, width: 0, bytes: 0 };
        (await window.pc.getStats()).forEach((r) => {
          if (r.type !== "inbound-rtp") return;
          seen.bytes += r.bytesReceived ?? 0;
          if (r.kind === "video") {
            seen.frames = r.framesDecoded ?? 0;
            seen.width = r.frameWidth ?? 0;
          }
        });
        return seen;
      });
    while ((await received()).frames === 0) {
      if (Date.now() > deadline) throw new Error("never decoded the other side");
      await sleep(input.sample_ms);
    }
    await writeFile(input.ready, input.role);
    const samples = [];
    while (!(await exists(input.stop))) {
      if (Date.now() > deadline) throw new Error("never told to stop");
      samples.push({ t: Date.now(), ...(await received()) });
      await sleep(input.sample_ms);
    }
    return { samples };
  } finally {
    server.close();
  }
}, { cameraFps: 10 });
