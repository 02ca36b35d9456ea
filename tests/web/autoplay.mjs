// Chromium's real autoplay policy: a speaker and a listener open an audio space by link, so no
// page was clicked. The listener's page captures nothing (Chromium lets capturing pages play
// sound), so its browser holds the speaker back; the page says so, and one click plays it.
//
// Input: { room, first, second } (page URLs).
// Output: { prompt_shown, paused_before, paused_after, prompt_after }.
import { main, openPage, roomUrl } from "./lib.mjs";

const TIMEOUT = 30_000;

main(
  async (browser, input) => {
    // The speaker first, then the listener. Nothing may touch the listener's page until its
    // sound was held back: Playwright's evaluations count as user gestures. The page says so
    // in the console.
    await openPage(browser, roomUrl(input.first, input.room));
    const context = await browser.newContext();
    const second = await context.newPage();
    const heldBack = second.waitForEvent("console", {
      predicate: (message) => message.text().includes("holds sound back"),
      timeout: TIMEOUT,
    });
    await second.goto(roomUrl(input.second, input.room));
    await heldBack;
    await second.waitForSelector("#sound-prompt:not([hidden])", { timeout: TIMEOUT });
    const pausedBefore = await second.$eval("#grid audio[data-slot]", (v) => v.paused);
    await second.click("#sound-prompt");
    await second.waitForFunction(() => !document.querySelector("#grid audio[data-slot]").paused, null, { timeout: TIMEOUT });
    return {
      prompt_shown: true,
      paused_before: pausedBefore,
      paused_after: await second.$eval("#grid audio[data-slot]", (v) => v.paused),
      prompt_after: await second.isVisible("#sound-prompt"),
    };
  },
  { autoplay: false },
);
