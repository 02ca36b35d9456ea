// A broadcast room from the page: a presenter goes live with its camera and microphone; two
// viewers, each on their own node, watch it through the room's relay tree. A viewer cannot go
// live; when the presenter ends, the viewers see the broadcast is over, and when it goes live
// again they watch again.
//
// Input: { room, presenter, viewers: [url, url], viewer_engines: ["chromium" | "firefox", ..],
//         screenshots } (page URLs; viewers are Chromium unless `viewer_engines` says).
// Output: { presenter_audience, viewers: [{ frames: [a, b], audience, refusal }], after_end,
//           again: [[framesDecoded, 1 s later]…] }.
import { main, openPage, roomUrl, videoFramesDecoded } from "./lib.mjs";

const TIMEOUT = 45_000;

main(async (browser, input) => {
  const presenter = await openPage(browser, roomUrl(input.presenter, input.room));
  await presenter.waitForSelector("#go-live:not([hidden])", { timeout: TIMEOUT });
  await presenter.click("#go-live");
  await presenter.waitForFunction(() => window.chroom.live && window.chroom.publishPc?.connectionState === "connected", null, { timeout: TIMEOUT });

  const viewers = [];
  for (const [i, url] of input.viewers.entries()) {
    const engine = input.viewer_engines?.[i] ?? "chromium";
    viewers.push(await openPage(browser, roomUrl(url, input.room), { engine }));
  }
  const seen = [];
  for (const viewer of viewers) {
    await viewer.waitForFunction(() => [...document.querySelectorAll("#grid video[data-slot]")].some((v) => v.readyState >= 2), null, { timeout: TIMEOUT });
    await viewer.waitForFunction(() => document.querySelector("#audience").textContent.includes("2 watching"), null, { timeout: TIMEOUT });
    const first = await videoFramesDecoded(viewer);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    seen.push({ frames: [first, await videoFramesDecoded(viewer)], audience: await viewer.textContent("#audience"), goLive: await viewer.isVisible("#go-live") });
  }
  if (input.screenshots) {
    for (const [i, viewer] of viewers.entries()) {
      const engine = input.viewer_engines?.[i] ?? "chromium";
      const name = engine === "chromium" ? "broadcast-viewer" : `broadcast-viewer-${engine}`;
      await viewer.screenshot({ path: `${input.screenshots}/${name}.png` });
    }
  }
  await presenter.waitForFunction(() => document.querySelector("#audience").textContent.includes("2 watching"), null, { timeout: TIMEOUT });
  const presenterAudience = await presenter.textContent("#audience");

  // A viewer asks to go live anyway: refused.
  await viewers[0].evaluate((room) => window.chroom.socket.send(JSON.stringify({ type: "join", room, live: true })), input.room);
  await viewers[0].waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
  seen[0].refusal = await viewers[0].textContent("#error");

  // The presenter ends the broadcast: its goodbye reaches the viewers at once (no waiting for
  // a link to time out).
  await presenter.click("#go-live");
  for (const viewer of viewers) {
    await viewer.waitForFunction(() => document.querySelector("#audience").textContent.includes("waiting for the broadcast"), null, { timeout: 8_000 });
  }
  const afterEnd = await Promise.all(viewers.map((v) => v.textContent("#audience")));

  // And goes live again: the viewers find it again.
  await presenter.click("#go-live");
  const again = [];
  for (const viewer of viewers) {
    await viewer.waitForFunction(() => document.querySelector("#audience").textContent.startsWith("live"), null, { timeout: TIMEOUT });
    await viewer.waitForFunction(() => [...document.querySelectorAll("#grid video[data-slot]")].some((v) => v.readyState >= 2), null, { timeout: TIMEOUT });
    const first = await videoFramesDecoded(viewer);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    again.push([first, await videoFramesDecoded(viewer)]);
  }
  return {
    presenter_audience: presenterAudience,
    viewers: seen,
    after_end: afterEnd,
    again,
  };
});
