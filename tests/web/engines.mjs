// Pages in Firefox and Chromium in one conference, each from its own node: every page must play
// every other member. Each page samples, for `watch_ms`, what it decodes of the others (as in
// conference.mjs); the first Firefox page is photographed.
//
// Input: { pages: [{ url, engine: "chromium" | "firefox" }], room, watch_ms, screenshots }.
// Output: { sample_ms, pages: [{ engine, videos: { mid: [framesDecoded…] }, audio: { mid:
//           samples }, playing, error }] }.
import { main, openPage, roomUrl, watchEachOther } from "./lib.mjs";

main(async (browser, input) => {
  const pages = [];
  for (const { url, engine } of input.pages) {
    pages.push(await openPage(browser, roomUrl(url, input.room), { engine }));
  }
  const watched = await watchEachOther(pages, input.watch_ms);
  const firefox = input.pages.findIndex((p) => p.engine === "firefox");
  if (input.screenshots && firefox >= 0) {
    await pages[firefox].screenshot({ path: `${input.screenshots}/conference-firefox.png` });
  }
  return {
    ...watched,
    pages: watched.pages.map((seen, i) => ({ engine: input.pages[i].engine, ...seen })),
  };
});
