// Two pages go live in one broadcast room at the same moment. Every node settles on one
// broadcast: the other page is told, goes back to watching and plays it, as does a viewer.
// Going live again while that broadcast is on is refused by the page's own node.
//
// Input: { room, first, second, viewer } (page URLs; first and second may go live).
// Output: { peers: [first, second], live: [bool, bool], told, audience, loser_frames,
//           viewer_frames, viewer_shows, again }.
import { main, openPage, roomUrl, videoFramesDecoded } from "./lib.mjs";

const TIMEOUT = 60_000;

const banner = (page) => page.evaluate(() => (document.querySelector("#error").hidden ? null : document.querySelector("#error").textContent));

// Frames decoded before and 2 s after a page plays the broadcast.
async function plays(page) {
  await page.waitForFunction(() => [...document.querySelectorAll("#grid video[data-slot]")].some((v) => v.readyState >= 2), null, { timeout: TIMEOUT });
  const first = await videoFramesDecoded(page);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  return [first, await videoFramesDecoded(page)];
}

main(async (browser, input) => {
  const first = await openPage(browser, roomUrl(input.first, input.room));
  const second = await openPage(browser, roomUrl(input.second, input.room));
  const viewer = await openPage(browser, roomUrl(input.viewer, input.room));
  const pages = [first, second, viewer];
  for (const page of pages) {
    await page.waitForFunction(() => (window.chroom.participants ?? []).length === 3, null, { timeout: TIMEOUT });
  }
  for (const page of [first, second]) await page.waitForSelector("#go-live:not([hidden])", { timeout: TIMEOUT });
  const peers = await Promise.all([first, second].map((p) => p.evaluate(() => window.chroom.self.peerId)));

  await Promise.all([first.click("#go-live"), second.click("#go-live")]);
  // Settled: one page live, the other told (and watching).
  const liveness = (page) => Promise.all([page.evaluate(() => window.chroom.live), banner(page)]).then(([live, told]) => ({ live, told }));
  const deadline = Date.now() + TIMEOUT;
  let settled = await Promise.all([first, second].map(liveness));
  while (!(settled.filter((s) => s.live).length === 1 && settled.some((s) => !s.live && s.told))) {
    if (Date.now() > deadline) throw new Error(`no single broadcast: ${JSON.stringify(settled)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    settled = await Promise.all([first, second].map(liveness));
  }
  const winner = settled[0].live ? first : second;
  const loser = settled[0].live ? second : first;
  const told = settled.find((s) => !s.live).told;

  await winner.waitForFunction(() => document.querySelector("#audience").textContent.includes("2 watching"), null, { timeout: TIMEOUT });
  const audience = await winner.textContent("#audience");
  const loserFrames = await plays(loser);
  const viewerFrames = await plays(viewer);
  const viewerShows = await viewer.$$eval("#grid .tile", (tiles) => tiles.map((t) => t.dataset.peer));

  // Asked again while the other broadcast is on: refused by its own node.
  await loser.evaluate(() => {
    document.querySelector("#error").hidden = true;
  });
  await loser.click("#go-live");
  await loser.waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
  const again = await loser.textContent("#error");
  return {
    peers,
    live: settled.map((s) => s.live),
    told,
    audience,
    loser_frames: loserFrames,
    viewer_frames: viewerFrames,
    viewer_shows: viewerShows,
    again,
    still_live: await winner.evaluate(() => window.chroom.live),
  };
});
