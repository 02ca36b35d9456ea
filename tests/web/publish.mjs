// A member's page joins a room by link and sends its (fake) camera and microphone to its node.
// The page stays in the call for `hold_ms` while the Rust side checks another member receives.
//
// Input: { url, room, hold_ms, screenshots }. Output: the publishing connection's state and
// what the browser says it sent.
import { main, openPage, roomUrl } from "./lib.mjs";

main(async (browser, input) => {
  const page = await openPage(browser, roomUrl(input.url, input.room));
  await page.waitForSelector("#call:not([hidden])", { timeout: 30_000 });
  await page.waitForFunction(
    () => window.chroom?.publishPc?.connectionState === "connected",
    null,
    { timeout: 30_000 },
  );
  await page.waitForTimeout(input.hold_ms);
  const sent = await page.evaluate(async () => {
    const stats = await window.chroom.publishPc.getStats();
    // The camera goes out as simulcast layers, one outbound stream each: packets add up,
    // frames are those of the layer that encoded most (each layer encodes the same pictures).
    const out = {};
    stats.forEach((report) => {
      if (report.type !== "outbound-rtp") return;
      const seen = (out[report.kind] ??= { packets: 0, frames: null });
      seen.packets += report.packetsSent ?? 0;
      if (report.framesEncoded !== undefined) seen.frames = Math.max(seen.frames ?? 0, report.framesEncoded);
    });
    return out;
  });
  if (input.screenshots) await page.screenshot({ path: `${input.screenshots}/publishing.png` });
  // Muting disables the track (silence goes out, the link stays); unmuting enables it again.
  await page.click("#toggle-mic");
  const muted = await page.evaluate(() => window.chroom.local.getAudioTracks().every((t) => !t.enabled));
  const mutedLabel = await page.textContent("#toggle-mic");
  await page.click("#toggle-mic");
  const unmuted = await page.evaluate(() => window.chroom.local.getAudioTracks().every((t) => t.enabled));
  return {
    connection_state: await page.evaluate(() => window.chroom.publishPc.connectionState),
    error: (await page.isVisible("#error")) ? await page.textContent("#error") : null,
    sent,
    mute: { muted, label: mutedLabel, unmuted },
  };
});
