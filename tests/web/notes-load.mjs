// A page joining a room whose note is large: the note shows whole, and how long it took.
//
// Input: { url, room, length } (the page URL, the room, the note's length in characters).
// Output: { shown: characters shown, ms: from opening the room's page to the note shown }.
import { main, openPage, roomUrl } from "./lib.mjs";

main(async (browser, input) => {
  const started = Date.now();
  const page = await openPage(browser, roomUrl(input.url, input.room));
  await page.waitForFunction(
    (length) => document.querySelector("#note-text").value.length >= length,
    input.length,
    { timeout: 30_000, polling: 50 },
  );
  const ms = Date.now() - started;
  const shown = await page.$eval("#note-text", (area) => area.value.length);
  return { shown, ms };
});
