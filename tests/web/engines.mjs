// Pages in Firefox and Chromium in one conference, each from its own node: every page must play
// every other member. Each page samples, for `watch_ms`, what it decodes of the others (as in
// conference.mjs); the first Firefox page is photographed. Then the page at `presenter` shares
// its screen and the others show it (as in conference.mjs).
//
// Input: { pages: [{ url, engine: "chromium" | "firefox" }], room, watch_ms, presenter,
//          screenshots }.
// Output: { sample_ms, pages: [{ engine, videos: { mid: [framesDecoded…] }, audio: { mid:
//           samples }, playing, error }], screen: (as conference.mjs's) }.
import { main, openPage, roomUrl, shareScreen, watchEachOther } from "./lib.mjs";

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
  const presenter = input.presenter ?? 0;
  const sharing = [pages[presenter], ...pages.filter((_, i) => i !== presenter)];
  // The first other page, photographed showing the shared screen.
  const shot = input.screenshots && `${input.screenshots}/screen-shared-by-${input.pages[presenter].engine}.png`;
  const screen = await shareScreen(sharing, shot);
  return {
    ...watched,
    pages: watched.pages.map((seen, i) => ({ engine: input.pages[i].engine, ...seen })),
    screen,
  };
  // Two browsers and three nodes share two cores: see conference.mjs.
}, { cameraFps: 10 });
