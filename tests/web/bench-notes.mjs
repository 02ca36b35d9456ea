// Benchmark scenario for `chroom bench docs --pages`: two pages on their own nodes open a room's
// note; one types a key at a time, and the other notes when each key shows. Both pages live in
// one browser, so their clocks are one.
//
// Input: { urls: [writer, reader], room, keys, gap_ms }.
// Output: { keystroke_ms: [from the key typed to it shown on the other page, per key] }.
import { main, openPage, roomUrl } from "./lib.mjs";

const TIMEOUT = 45_000;

main(async (browser, input) => {
  const pages = [];
  for (const url of input.urls) pages.push(await openPage(browser, roomUrl(url, input.room)));
  for (const page of pages) {
    await page.waitForFunction(
      () => document.querySelector("#note-select")?.value === "notes" &&
        !document.querySelector("#note-text").readOnly &&
        document.querySelectorAll("#participants li").length === 2,
      null,
      { timeout: TIMEOUT },
    );
  }
  const [typing, watching] = pages;
  // The reader records when each length first shows.
  await watching.evaluate(() => {
    const area = document.querySelector("#note-text");
    window.__shownAt = new Map();
    area.addEventListener("members-edit", () => {
      if (!window.__shownAt.has(area.value.length)) window.__shownAt.set(area.value.length, Date.now());
    });
  });
  const keystrokeMs = [];
  for (let i = 0; i < input.keys; i++) {
    const { typedAt, length } = await typing.evaluate(() => {
      const area = document.querySelector("#note-text");
      area.focus();
      const end = area.value.length;
      const typedAt = Date.now();
      area.setRangeText("k", end, end, "end");
      area.dispatchEvent(new Event("input"));
      return { typedAt, length: area.value.length };
    });
    const shownAt = await watching.waitForFunction(
      (length) => window.__shownAt.get(length),
      length,
      { timeout: TIMEOUT, polling: 20 },
    );
    keystrokeMs.push((await shownAt.jsonValue()) - typedAt);
    await new Promise((resolve) => setTimeout(resolve, input.gap_ms));
  }
  return { keystroke_ms: keystrokeMs };
});
