// An audio space: a speaker's and a listener's pages join. Nothing negotiates video; the
// listener hears the speaker; the listener sends nothing; the page says who speaks and listens.
//
// Input: { speaker, listener, room, screenshots, listener_engine } (the listener's page opens in
// Chromium unless `listener_engine` is "firefox"). Output: what each page negotiated and heard.
import { main, openPage, roomUrl } from "./lib.mjs";

const TIMEOUT = 30_000;

main(async (browser, input) => {
  const open = async (url, engine) => {
    const page = await openPage(browser, roomUrl(url, input.room), { engine });
    await page.waitForSelector("#call:not([hidden])", { timeout: TIMEOUT });
    return page;
  };
  const speaker = await open(input.speaker);
  const listener = await open(input.listener, input.listener_engine);
  await speaker.waitForFunction(() => window.chroom.publishPc?.connectionState === "connected", null, {
    timeout: TIMEOUT,
  });
  // The listener hears a second of the speaker.
  await listener.waitForFunction(
    async () => {
      const stats = await window.chroom.playbackPc?.getStats();
      let samples = 0;
      stats?.forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "audio") samples += r.totalSamplesReceived ?? 0;
      });
      return samples > 48_000;
    },
    null,
    { timeout: TIMEOUT, polling: 250 },
  );
  await listener.waitForFunction(() => document.querySelectorAll("#participants li").length === 2, null, {
    timeout: TIMEOUT,
  });
  const sdp = (page, pc) => page.evaluate((which) => window.chroom[which]?.remoteDescription?.sdp ?? null, pc);
  const mlines = (text) => (text ?? "").split("\n").filter((l) => l.startsWith("m=")).map((l) => l.split(" ")[0]);
  if (input.screenshots) {
    const name = input.listener_engine === "firefox" ? "audio-space-firefox" : "audio-space";
    await listener.screenshot({ path: `${input.screenshots}/${name}.png` });
  }
  return {
    speaker_publish: mlines(await sdp(speaker, "publishPc")),
    listener_playback: mlines(await sdp(listener, "playbackPc")),
    listener_publishes: await listener.evaluate(() => window.chroom.publishPc !== null),
    audience: await listener.textContent("#audience"),
    listener_error: (await listener.isVisible("#error")) ? await listener.textContent("#error") : null,
  };
});
