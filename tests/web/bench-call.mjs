// Benchmark scenario for `chroom bench call`: members 1..N-1 are in a call with their cameras
// on; member 0's page joins it `runs` times, timing from the click on Join to the first frame of
// a remote video; then the whole call holds for `hold_ms` while the bench samples member 0's
// node. Prints "steady" when the call is whole, then the result as JSON.
//
// Input: { urls, room, runs, hold_ms, engine }. Output: { join_to_first_frame_ms: [..],
// clicked_at_unix_ms: [..] } (the wall clock of each click, to find the join in nodes' logs).
import { main, openPage, roomUrl } from "./lib.mjs";

const TIMEOUT = 45_000;

main(async (browser, input) => {
  const open = (url) => openPage(browser, url);
  const others = [];
  for (const url of input.urls.slice(1)) {
    const page = await open(roomUrl(url, input.room));
    await page.waitForFunction(() => window.chroom?.publishPc?.connectionState === "connected", null, {
      timeout: TIMEOUT,
    });
    others.push(page);
  }

  const page = await openPage(browser, input.urls[0], { engine: input.engine ?? "chromium" });
  const joins = [];
  const clicks = [];
  for (let run = 0; run < input.runs; run++) {
    await page.fill("#room-input", input.room);
    await page.evaluate(() => {
      window.__firstFrame = null;
      window.__clicked = performance.now();
      window.__clickedAt = Date.now();
      document.querySelector("#join-button").click();
    });
    await page.waitForFunction(
      () => {
        const ok = [...document.querySelectorAll("#grid video[data-slot]")].some((v) => v.readyState >= 2);
        if (ok && window.__firstFrame === null) window.__firstFrame = performance.now();
        return ok;
      },
      null,
      { timeout: TIMEOUT, polling: "raf" },
    );
    joins.push(await page.evaluate(() => window.__firstFrame - window.__clicked));
    clicks.push(await page.evaluate(() => window.__clickedAt));
    if (run + 1 < input.runs) {
      await page.click("#leave-button");
      await page.waitForSelector("#lobby:not([hidden])", { timeout: TIMEOUT });
      await page.waitForTimeout(1000);
    }
  }
  const members = input.urls.length;
  for (const p of [page, ...others]) {
    await p.waitForFunction(
      (count) =>
        [...document.querySelectorAll("#grid video[data-slot]")].filter((v) => v.readyState >= 2).length >= count,
      members - 1,
      { timeout: TIMEOUT },
    );
  }
  process.stdout.write("steady\n");
  await page.waitForTimeout(input.hold_ms);
  return { join_to_first_frame_ms: joins, clicked_at_unix_ms: clicks };
});
