// One presenter at a time in a conference: a member shares its screen and presents; another
// member's "Share screen" puts it in line instead (its node refuses the screen); the host lets
// it present: the first stops sharing, every page shows the second presenting, and the second
// shares its screen, which the others show large.
//
// Input: { room, host, first, second } (page URLs).
// Output: who each page showed presenting and asking at each step, and the refusal.
import { main, openPage, roomUrl, untilEvery } from "./lib.mjs";

const TIMEOUT = 30_000;

const shown = (page) =>
  page.evaluate(() => {
    const people = window.chroom.participants ?? [];
    return {
      presenting: people.filter((p) => p.presenting).map((p) => p.peer_id),
      asking: people.filter((p) => p.asking_to_present).map((p) => p.peer_id),
      sharing: Boolean(window.chroom.screen),
      shown: document.querySelector("#presentation").hidden ? null : document.querySelector("#presentation").dataset.peer,
    };
  });

// Waits until every page shows what `check` asks; returns what each showed.
const untilAll = (pages, check, what) => untilEvery(pages, shown, check, what, TIMEOUT);

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

main(async (browser, input) => {
  const host = await openPage(browser, roomUrl(input.host, input.room));
  const first = await openPage(browser, roomUrl(input.first, input.room));
  const second = await openPage(browser, roomUrl(input.second, input.room));
  const pages = [host, first, second];
  for (const page of pages) {
    await page.waitForFunction(() => (window.chroom.participants ?? []).length === 3, null, { timeout: TIMEOUT });
  }
  const peerOf = (page) => page.evaluate(() => window.chroom.self.peerId);
  const [firstPeer, secondPeer] = [await peerOf(first), await peerOf(second)];

  await first.click("#share-screen");
  const firstPresents = await untilAll(
    [host, second],
    (v) => same(v.presenting, [firstPeer]) && v.shown === firstPeer,
    "the first presents and is shown",
  );

  // The second asks while the first presents: in line, no capture. Its node refuses a screen
  // offer outright too.
  await second.click("#share-screen");
  const inLine = await untilAll(pages, (v) => same(v.asking, [secondPeer]), "the second in line");
  const secondSharing = await second.evaluate(() => Boolean(window.chroom.screen));
  await second.evaluate(() => window.chroom.socket.send(JSON.stringify({ type: "share_screen", sdp: "v=0" })));
  await second.waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
  const refusal = await second.textContent("#error");

  // The host lets the second present: the first stops sharing.
  await host.click(`#participants li[data-peer="${secondPeer}"] button[data-cue="pass_presentation"]`);
  const handedOver = await untilAll(
    pages,
    (v) => same(v.presenting, [secondPeer]) && v.asking.length === 0,
    "the second presents",
  );
  await first.waitForFunction(() => !window.chroom.screen, null, { timeout: TIMEOUT });
  await second.click("#share-screen");
  const secondShown = await untilAll([host, first], (v) => v.shown === secondPeer, "the second's screen is shown");
  return { first: firstPeer, second: secondPeer, first_presents: firstPresents, in_line: inLine, second_sharing_while_in_line: secondSharing, refusal, handed_over: handedOver, second_shown: secondShown };
});
