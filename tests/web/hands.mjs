// Hands and the stage in an audio space: the host speaks and each listener's page highlights
// it as the active speaker; two listeners raise their hands, one after the other
// (the second from Firefox); every page shows the same queue. A listener's page trying to
// invite another on stage is refused. The host invites the first: every page shows it on
// stage, the queue moves up, and the first's page speaks (its node takes part as a speaker)
// and is heard by the others until the host takes it off the stage. The first sets a display name: every page shows it beside its
// account; a name written as an address is refused.
//
// Input: { room, host, first, second } (page URLs).
// Output: the queue and stage each page showed at each step, the refusal, and the time from
// the host's invitation to the first packet of the listener's microphone at the host's page.
import { main, openPage, roomUrl, untilEvery } from "./lib.mjs";

const TIMEOUT = 30_000;

// [hands in queue order, members on stage], as a page shows them.
const shown = (page) =>
  page.evaluate(() => {
    const people = window.chroom.participants ?? [];
    const hands = people.filter((p) => p.hand != null).sort((a, b) => a.hand - b.hand).map((p) => p.peer_id);
    const stage = people.filter((p) => p.on_stage).map((p) => p.peer_id);
    return { hands, stage };
  });

// Waits until every page shows what `check` asks; returns what each showed.
const untilAll = (pages, check, what) => untilEvery(pages, shown, check, what, TIMEOUT);

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// Audio packets `page` has received from `peer` (null: no slot plays it).
const audioFrom = (page, peer) =>
  page.evaluate(async (peer) => {
    const s = window.chroom;
    const slot = s.slotPeers.indexOf(peer);
    if (slot < 0 || !s.playbackPc) return null;
    let packets = null;
    (await s.playbackPc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.mid === s.slots[slot].audioMid) packets = r.packetsReceived;
    });
    return packets;
  }, peer);

// Packets `page` receives from `peer` over two seconds.
async function audioOver2s(page, peer) {
  const before = (await audioFrom(page, peer)) ?? 0;
  await new Promise((resolve) => setTimeout(resolve, 2000));
  return ((await audioFrom(page, peer)) ?? 0) - before;
}

// Waits (`expected`) until `page` receives audio from `peer` and counts it over the next two
// seconds, or (not expected) counts what it receives over two seconds.
async function audioRising(page, peer, expected) {
  const deadline = Date.now() + TIMEOUT;
  while (expected && (await audioOver2s(page, peer)) === 0 && Date.now() < deadline);
  return audioOver2s(page, peer);
}

main(async (browser, input) => {
  const host = await openPage(browser, roomUrl(input.host, input.room));
  const first = await openPage(browser, roomUrl(input.first, input.room));
  const second = await openPage(browser, roomUrl(input.second, input.room), { engine: "firefox" });
  const pages = [host, first, second];
  for (const page of pages) {
    await page.waitForFunction(() => (window.chroom.participants ?? []).length === 3, null, { timeout: TIMEOUT });
  }
  const peerOf = (page) => page.evaluate(() => window.chroom.self.peerId);
  const [hostPeer, firstPeer, secondPeer] = [await peerOf(host), await peerOf(first), await peerOf(second)];
  // The host speaks (its page's fake microphone beeps): each listener's page highlights it as
  // the active speaker.
  for (const page of [first, second]) {
    await page.waitForFunction((peer) => window.chroom.speakersSeen.has(peer), hostPeer, { timeout: TIMEOUT });
  }
  const speakersSeen = await Promise.all([first, second].map((page) => page.evaluate(() => [...window.chroom.speakersSeen])));

  await first.click("#raise-hand");
  await untilAll(pages, (v) => same(v.hands, [firstPeer]), "the first hand");
  await second.click("#raise-hand");
  const queued = await untilAll(pages, (v) => same(v.hands, [firstPeer, secondPeer]), "both hands, in order");
  const hostButtons = await host.$$eval(`#participants li[data-peer="${firstPeer}"] button[data-cue]`, (bs) => bs.map((b) => b.textContent));
  const listenerButtons = await second.$$eval("#participants button[data-cue]", (bs) => bs.length);

  // A listener cannot invite: its own node refuses.
  await second.evaluate(
    (peer) => window.chroom.socket.send(JSON.stringify({ type: "cue", cue: "invite_to_stage", peer_id: peer })),
    firstPeer,
  );
  await second.waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
  const refusal = await second.textContent("#error");

  const granted = Date.now();
  await host.click(`#participants li[data-peer="${firstPeer}"] button[data-cue="invite_to_stage"]`);
  const invited = await untilAll(
    pages,
    (v) => same(v.stage, [firstPeer]) && same(v.hands, [secondPeer]),
    "the first on stage, the second next",
  );

  // On stage, the first listener's page speaks: the host's and the other listener's pages
  // receive its microphone. Taken off the stage, it is silenced on both.
  await first.waitForFunction(() => window.chroom.local !== null && window.chroom.local !== undefined, null, { timeout: TIMEOUT });
  // From the host's click to the first of the listener's packets at the host's page.
  while (!((await audioFrom(host, firstPeer)) > 0)) {
    if (Date.now() > granted + TIMEOUT) throw new Error("the listener on stage is never heard");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const grantToHeardMs = Date.now() - granted;
  const heardOnStage = [];
  for (const page of [host, second]) heardOnStage.push(await audioRising(page, firstPeer, true));
  await host.click(`#participants li[data-peer="${firstPeer}"] button[data-cue="remove_from_stage"]`);
  await untilAll(pages, (v) => v.stage.length === 0, "off stage");
  // Packets already on their way may still land: judge from a second on.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const heardOffStage = [];
  for (const page of [host, second]) heardOffStage.push(await audioRising(page, firstPeer, false));

  // Names: shown beside the account on every page; an address as a name is refused.
  await first.evaluate(() => window.chroom.socket.send(JSON.stringify({ type: "set_name", name: "Ada" })));
  const nameOf = (page, peer) =>
    page.$eval(`#participants li[data-peer="${peer}"] .name`, (e) => e.textContent).catch(() => null);
  const deadline = Date.now() + TIMEOUT;
  let names;
  for (;;) {
    names = await Promise.all(pages.map((page) => nameOf(page, firstPeer)));
    if (names.every((n) => n?.startsWith("Ada · 0x"))) break;
    if (Date.now() > deadline) throw new Error(`the name: ${JSON.stringify(names)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const address = await second.evaluate(() => window.chroom.participants.find((p) => !p.is_self && p.account).account);
  await second.evaluate((name) => window.chroom.socket.send(JSON.stringify({ type: "set_name", name })), address);
  await second.waitForFunction(() => document.querySelector("#error").textContent.includes("address"), null, { timeout: TIMEOUT });
  const name_refusal = await second.textContent("#error");
  return { first: firstPeer, second: secondPeer, queued, host_buttons: hostButtons, listener_buttons: listenerButtons, refusal, invited, names, name_refusal, host: hostPeer, speakers_seen: speakersSeen, heard_on_stage: heardOnStage, heard_off_stage: heardOffStage, grant_to_heard_ms: grantToHeardMs };
});
