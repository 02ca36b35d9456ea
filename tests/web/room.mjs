// Two members join a room from their own nodes' pages (one by link, one by typing the name), see
// each other with their registry roles, chat, and one leaves and comes back to the chat so far;
// a stranger's page is refused.
//
// Input: { room, member_a, member_b, member_b_engine, stranger, screenshots } where the three
//        are page URLs (B's page in `member_b_engine`, Chromium by default).
// Output: what each page showed at each step.
import { main, openPage, participants, roomUrl } from "./lib.mjs";

const TIMEOUT = 30_000;

main(async (browser, input) => {
  const open = (url) => openPage(browser, url);

  // A joins by link, B by typing the room's name.
  const a = await open(roomUrl(input.member_a, input.room));
  const b = await openPage(browser, input.member_b, { engine: input.member_b_engine ?? "chromium" });
  await b.fill("#room-input", input.room);
  await b.click("#join-button");
  await a.waitForSelector("#call:not([hidden])", { timeout: TIMEOUT });
  await b.waitForSelector("#call:not([hidden])", { timeout: TIMEOUT });

  const both = (page) =>
    page.waitForFunction(() => document.querySelectorAll("#participants li").length === 2, null, {
      timeout: TIMEOUT,
    });
  await both(a);
  await both(b);
  const roster = { a: await participants(a), b: await participants(b) };

  // The stranger is refused with a readable reason and stays in the lobby.
  const c = await open(roomUrl(input.stranger, input.room));
  await c.waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
  const refusal = await c.textContent("#error");
  const strangerInCall = await c.isVisible("#call");

  // Chat both ways.
  await a.fill("#chat-input", "hello from a");
  await a.click("#chat-send");
  await b.waitForFunction(
    () => [...document.querySelectorAll("#messages li .text")].some((m) => m.textContent === "hello from a"),
    null,
    { timeout: TIMEOUT },
  );
  await b.fill("#chat-input", "hi a, b here");
  await b.press("#chat-input", "Enter");
  // A hears it; B shows it as its own once its node has sent it.
  for (const page of [a, b]) {
    await page.waitForFunction(
      () => [...document.querySelectorAll("#messages li .text")].some((m) => m.textContent === "hi a, b here"),
      null,
      { timeout: TIMEOUT },
    );
  }
  const chat = {
    a: await a.$$eval("#messages li .text", (items) => items.map((i) => i.textContent)),
    b: await b.$$eval("#messages li .text", (items) => items.map((i) => i.textContent)),
  };
  if (input.screenshots) {
    await a.screenshot({ path: `${input.screenshots}/room-a.png` });
    await c.screenshot({ path: `${input.screenshots}/refused.png` });
  }

  // B leaves: A's list drops to one at once (B says it is leaving).
  await b.click("#leave-button");
  await b.waitForSelector("#lobby:not([hidden])", { timeout: TIMEOUT });
  const leftAt = Date.now();
  await a.waitForFunction(() => document.querySelectorAll("#participants li").length === 1, null, {
    timeout: TIMEOUT,
  });
  const leaveSeenMs = Date.now() - leftAt;
  const afterLeave = await participants(a);

  // B comes back: the chat so far is shown again, from what its node kept.
  await b.fill("#room-input", input.room);
  await b.click("#join-button");
  await b.waitForFunction(() => document.querySelectorAll("#messages li .text").length >= 2, null, {
    timeout: TIMEOUT,
  });
  const history = await b.$$eval("#messages li", (items) =>
    items.map((i) => ({ text: i.querySelector(".text").textContent, own: i.classList.contains("own") })),
  );
  return {
    roster,
    refusal,
    stranger_in_call: strangerInCall,
    chat,
    leave_seen_ms: leaveSeenMs,
    after_leave: afterLeave,
    history_b: history,
  };
});
