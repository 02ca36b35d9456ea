// Webinar Q&A: in a broadcast room, a viewer asks the hosts questions. The host's page lists
// them, another viewer's page does not, and the asker's page shows its own; asking faster
// than members take questions (3 at once, then one every 20 s) is refused by the asker's node.
//
// Input: { room, host, asker, other } (page URLs).
// Output: the questions each page shows, and the refusal.
import { main, openPage, roomUrl } from "./lib.mjs";

const TIMEOUT = 30_000;

const questions = (page) => page.$$eval("#messages li.question .text", (items) => items.map((i) => i.textContent));

main(async (browser, input) => {
  const host = await openPage(browser, roomUrl(input.host, input.room));
  const asker = await openPage(browser, roomUrl(input.asker, input.room));
  const other = await openPage(browser, roomUrl(input.other, input.room));
  const pages = [host, asker, other];
  for (const page of pages) {
    await page.waitForFunction(() => (window.chroom.participants ?? []).length === 3, null, { timeout: TIMEOUT });
  }
  await host.waitForFunction(() => window.chroom.participants.find((p) => p.is_self)?.hosting, null, { timeout: TIMEOUT });
  const askButton = await asker.isVisible("#ask-hosts");
  const ask = async (text) => {
    await asker.fill("#chat-input", text);
    await asker.click("#ask-hosts");
  };
  for (const text of ["Will the slides be shared?", "Is there a recording?", "Which chain is it on?"]) {
    await ask(text);
  }
  await host.waitForFunction(() => document.querySelectorAll("#messages li.question").length === 3, null, { timeout: TIMEOUT });
  await ask("One more?");
  await asker.waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
  const refusal = await asker.textContent("#error");
  // Give a question that was not refused time to arrive anyway.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return { ask_button: askButton, host: await questions(host), asker: await questions(asker), other: await questions(other), refusal };
});
