// A host, a speaker and a listener in one conference, each on their own node's page. The
// listener's page asks to mute the speaker and is refused; the host mutes the speaker (nobody
// receives the speaker's microphone until the host unmutes), then removes the speaker, who is
// put out of the room, and ignored and put out again when coming back.
//
// Input: { room, host, speaker, listener, host_engine } (page URLs; the host's page in
//        `host_engine`, Chromium by default).
// Output: what each page showed and received at each step.
import { main, openPage, participants, roomUrl } from "./lib.mjs";

const TIMEOUT = 30_000;

// Audio packets the page has received from `peer`'s playback slot.
async function audioFrom(page, peer) {
  return page.evaluate(async (peer) => {
    const s = window.chroom;
    const slot = s.slotPeers.indexOf(peer);
    if (slot < 0) return null;
    const mid = s.slots[slot].audioMid;
    let packets = null;
    (await s.playbackPc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.mid === mid) packets = r.packetsReceived;
    });
    return packets;
  }, peer);
}

// Packets received from `peer` over `ms`.
async function audioOver(page, peer, ms) {
  const before = await audioFrom(page, peer);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return (await audioFrom(page, peer)) - before;
}

// Whether a page lists `p` as muted by a host (run in the page).
const isMuted = (p) => document.querySelector(`#participants li[data-peer="${p}"]`)?.classList.contains("muted-by-host") === true;
const isUnmuted = (p) => document.querySelector(`#participants li[data-peer="${p}"]`)?.classList.contains("muted-by-host") === false;

main(async (browser, input) => {
  const host = await openPage(browser, roomUrl(input.host, input.room), { engine: input.host_engine ?? "chromium" });
  const speaker = await openPage(browser, roomUrl(input.speaker, input.room));
  const listener = await openPage(browser, roomUrl(input.listener, input.room));
  const pages = [host, speaker, listener];
  for (const page of pages) {
    await page.waitForFunction(() => document.querySelectorAll("#participants li").length === 3, null, { timeout: TIMEOUT });
  }
  const speakerPeer = await speaker.evaluate(() => window.chroom.self.peerId);
  await listener.waitForFunction(
    (peer) => window.chroom.slotPeers.includes(peer) && window.chroom.tracks.size > 0,
    speakerPeer,
    { timeout: TIMEOUT },
  );
  await listener.waitForFunction(async (peer) => {
    const s = window.chroom;
    const mid = s.slots[s.slotPeers.indexOf(peer)].audioMid;
    let packets = 0;
    (await s.playbackPc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.mid === mid) packets = r.packetsReceived;
    });
    return packets > 0;
  }, speakerPeer, { timeout: TIMEOUT });
  const hostButtons = await host.$$eval(`#participants li[data-peer="${speakerPeer}"] button`, (bs) => bs.map((b) => b.textContent));
  const listenerButtons = await listener.$$eval("#participants li button", (bs) => bs.length);
  const beforeMute = await audioOver(listener, speakerPeer, 1000);

  // The listener's page asks anyway: refused.
  await listener.evaluate((peer) => window.chroom.socket.send(JSON.stringify({ type: "moderate", peer_id: peer, action: "mute" })), speakerPeer);
  await listener.waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
  const listenerRefusal = await listener.textContent("#error");

  // The host mutes the speaker.
  await host.click(`#participants li[data-peer="${speakerPeer}"] button[data-action="mute"]`);
  await speaker.waitForFunction(isMuted, speakerPeer, { timeout: TIMEOUT });
  await listener.waitForFunction(isMuted, speakerPeer, { timeout: TIMEOUT });
  const speakerMicDisabled = await speaker.$eval("#toggle-mic", (b) => b.disabled);
  // Packets already on their way may still land: judge from half a second on.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const whileMuted = await audioOver(listener, speakerPeer, 1500);

  await host.click(`#participants li[data-peer="${speakerPeer}"] button[data-action="unmute"]`);
  await listener.waitForFunction(isUnmuted, speakerPeer, { timeout: TIMEOUT });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const afterUnmute = await audioOver(listener, speakerPeer, 1500);

  // The host removes the speaker: out of the room, and gone from the others' lists.
  await host.click(`#participants li[data-peer="${speakerPeer}"] button[data-action="remove"]`);
  await speaker.waitForSelector("#lobby:not([hidden])", { timeout: TIMEOUT });
  const removal = await speaker.textContent("#error");
  for (const page of [host, listener]) {
    await page.waitForFunction(() => document.querySelectorAll("#participants li").length === 2, null, { timeout: TIMEOUT });
  }
  const notices = await listener.$$eval("#messages li.notice", (items) => items.map((i) => i.textContent));

  // The speaker comes back: the others' nodes ignore it, and the host's node, seeing it arrive,
  // tells the room (and so the speaker's node) of the removal again. Joining hides the old
  // error, so an error saying so again is the new removal.
  await speaker.fill("#room-input", input.room);
  await speaker.click("#join-button");
  await speaker.waitForFunction(
    () => !document.querySelector("#error").hidden && document.querySelector("#error").textContent.includes("removed you"),
    null,
    { timeout: TIMEOUT },
  );
  const removedAgain = await speaker.isVisible("#lobby");
  await new Promise((resolve) => setTimeout(resolve, 3000));
  return {
    host_buttons: hostButtons,
    listener_buttons: listenerButtons,
    listener_refusal: listenerRefusal,
    before_mute: beforeMute,
    speaker_mic_disabled: speakerMicDisabled,
    while_muted: whileMuted,
    after_unmute: afterUnmute,
    removal,
    notices,
    after_return: {
      host: (await participants(host)).map((p) => p.peer),
      listener: (await participants(listener)).map((p) => p.peer),
      speaker: (await participants(speaker)).map((p) => p.peer),
    },
    speaker_peer: speakerPeer,
    removed_again: removedAgain,
  };
});
