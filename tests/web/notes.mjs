// Shared notes: three members type into one document at once (the same spot too) from a
// Chromium, a Firefox and a second Chromium page, and every page ends with the same text; in an
// audio space a listener's page shows the speaker's notes read-only.
//
// Input: { room, pages: [url, url, url], engines: [engine, ...], space, speaker, listener,
//          screenshots } (page URLs; `space` is an audio space where `speaker` may write and
//          `listener` may only read).
// Output: { typed: [[runs typed] per page], editors: [[who else edits, per page]], texts: [final text per page], space: {...} }.
import { main, openPage, roomUrl } from "./lib.mjs";

const TIMEOUT = 30_000;

// The Notes panel is ready: its document arrived from the node (editable or not).
async function notesOpen(page, editable) {
  await page.waitForFunction(
    (editable) => {
      const area = document.querySelector("#note-text");
      return document.querySelector("#note-select")?.value === "notes" && area.readOnly === !editable;
    },
    editable,
    { timeout: TIMEOUT },
  );
}

// Types `text` into the notes at `where` ("start" or "end"), a key at a time: each key is one
// edit the page sends, as a person typing makes them.
async function typeAt(page, where, text) {
  await page.evaluate((where) => {
    const area = document.querySelector("#note-text");
    area.focus();
    const at = where === "start" ? 0 : area.value.length;
    area.setSelectionRange(at, at);
  }, where);
  await page.type("#note-text", text, { delay: 15 });
}

const noteText = (page) => page.$eval("#note-text", (area) => area.value);

main(async (browser, input) => {
  const pages = [];
  for (const [i, url] of input.pages.entries()) {
    pages.push(await openPage(browser, roomUrl(url, input.room), { engine: input.engines[i] }));
  }
  for (const page of pages) await notesOpen(page, true);

  // All three at the start of the document at once; once every page shows all that, all
  // three at its end at once.
  const words = ["alpha", "bravo", "charlie"];
  const typed = words.map(() => []);
  let total = 0;
  for (const [where, run] of [
    ["start", (word) => `${word} starts. `],
    ["end", (word) => ` ${word} ends.`],
  ]) {
    await Promise.all(
      pages.map(async (page, i) => {
        const text = run(words[i]);
        await typeAt(page, where, text);
        typed[i].push(text);
        total += text.length;
      }),
    );
    // Every page converges on one text holding every key typed.
    await untilConverged(pages, total);
  }
  const texts = await Promise.all(pages.map(noteText));
  // Every page shows the two others editing, with where their carets are.
  for (const page of pages) {
    await page.waitForFunction(
      () => document.querySelectorAll("#note-editors li").length === 2 &&
        document.querySelectorAll("#note-carets .caret").length === 2,
      null,
      { timeout: TIMEOUT },
    );
  }
  const editors = await Promise.all(
    pages.map((page) => page.$$eval("#note-editors li", (items) => items.map((i) => i.textContent))),
  );
  if (input.screenshots) await pages[0].screenshot({ path: `${input.screenshots}/notes.png` });

  // An audio space: the speaker writes, the listener's page shows it read-only.
  const speaker = await openPage(browser, roomUrl(input.speaker, input.space));
  const listener = await openPage(browser, roomUrl(input.listener, input.space));
  await notesOpen(speaker, true);
  await notesOpen(listener, false);
  await typeAt(speaker, "start", "agenda: questions");
  await listener.waitForFunction(
    () => document.querySelector("#note-text").value === "agenda: questions",
    null,
    { timeout: TIMEOUT },
  );
  // A listener's keys change nothing on its read-only page.
  await typeAt(listener, "end", "!!");
  await listener.waitForTimeout(500);
  const space = {
    listener_text: await noteText(listener),
    listener_status: await listener.textContent("#note-status"),
    speaker_text: await noteText(speaker),
  };
  return { typed, texts, editors, space };
});

async function untilConverged(pages, total) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const texts = await Promise.all(pages.map(noteText));
    if (texts.every((t) => t === texts[0] && t.length === total)) return;
    if (Date.now() > deadline) {
      throw new Error(`notes did not converge on ${total} characters: ${JSON.stringify(texts)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
