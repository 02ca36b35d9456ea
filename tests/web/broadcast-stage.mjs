// A viewer brought on a broadcast's stage: the host (Firefox) goes live and two viewers watch.
// One viewer raises its hand and the host invites it on stage: its page joins the
// broadcaster's studio, sending its camera and microphone, which the host's page shows and
// plays, and it sees and hears the host's own camera over that link; the other viewer watches
// the program the host's page composes: both cameras side by side, twice as wide. The host
// takes the guest off the stage: it watches the broadcast again, the host's page no longer
// shows it, and the audience gets the host's own camera again.
//
// Input: { room, host, guest, viewer } (page URLs; host may go live).
// Output: { host, guest, audience, host_from_guest, guest_from_host, viewer_from_host,
//           viewer_shows, host_shows_after, guest_watches_after, viewer_after, mixed_voices,
//           invite_ms }
//           (what a page got from a member: { frames, audio, width, height } over 2 s).
import { main, openPage, roomUrl } from "./lib.mjs";

const TIMEOUT = 60_000;

// What `page` has received from `peer` through its playback slot: video frames decoded and
// audio packets (null: no slot shows the peer).
const fromPeer = (page, peer) =>
  page.evaluate(async (peer) => {
    const s = window.chroom;
    const slot = s.slotPeers.indexOf(peer);
    if (slot < 0 || !s.playbackPc || !s.slots[slot]) return null;
    const { audioMid, videoMid } = s.slots[slot];
    const got = { frames: 0, audio: 0, width: 0 };
    (await s.playbackPc.getStats()).forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      if (r.mid === videoMid) [got.frames, got.width, got.height] = [r.framesDecoded ?? 0, r.frameWidth ?? 0, r.frameHeight ?? 0];
      if (r.mid === audioMid) got.audio = r.packetsReceived ?? 0;
    });
    return got;
  }, peer);

// Waits until `page` decodes video from `peer`, then counts what arrives over 2 s.
async function receivesFrom(page, peer) {
  const deadline = Date.now() + TIMEOUT;
  let before = await fromPeer(page, peer);
  while (!(before?.frames > 0)) {
    if (Date.now() > deadline) throw new Error(`no video from ${peer}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    before = await fromPeer(page, peer);
  }
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const after = (await fromPeer(page, peer)) ?? { frames: 0, audio: 0, width: 0, height: 0 };
  const { width, height } = after;
  return { frames: after.frames - before.frames, audio: after.audio - before.audio, width, height };
}

// Waits until `page` decodes `peer`'s video as wide for its height as `tiles` 16:9 pictures
// side by side (the program of a host and its guest is two; a browser short of bandwidth may
// scale a picture down, never change its shape).
async function decodesTiles(page, peer, tiles) {
  const deadline = Date.now() + TIMEOUT;
  const shape = (got) => got?.height > 0 && Math.abs(got.width / got.height - (tiles * 16) / 9) < 0.1;
  while (!shape(await fromPeer(page, peer))) {
    if (Date.now() > deadline) throw new Error(`${peer} never showed ${tiles} tiles: ${JSON.stringify(await fromPeer(page, peer))}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const tiles = (page) => page.$$eval("#grid .tile", (tiles) => tiles.map((t) => t.dataset.peer));

main(async (browser, input) => {
  const host = await openPage(browser, roomUrl(input.host, input.room), { engine: "firefox" });
  const guest = await openPage(browser, roomUrl(input.guest, input.room));
  const viewer = await openPage(browser, roomUrl(input.viewer, input.room));
  const pages = [host, guest, viewer];
  for (const page of pages) {
    await page.waitForFunction(() => (window.chroom.participants ?? []).length === 3, null, { timeout: TIMEOUT });
  }
  const peerOf = (page) => page.evaluate(() => window.chroom.self.peerId);
  const [hostPeer, guestPeer] = [await peerOf(host), await peerOf(guest)];

  await host.waitForSelector("#go-live:not([hidden])", { timeout: TIMEOUT });
  await host.click("#go-live");
  await host.waitForFunction(() => window.chroom.live, null, { timeout: TIMEOUT });
  await receivesFrom(guest, hostPeer);

  // The hand, the invitation, and the guest's page joining the studio.
  await guest.click("#raise-hand");
  const invite = `#participants li[data-peer="${guestPeer}"] button[data-cue="invite_to_stage"]`;
  await host.waitForSelector(invite, { timeout: TIMEOUT });
  const invitedAt = Date.now();
  await host.click(invite);
  // The steps from the invitation to the audience: the guest's page joins the studio, the
  // host's page shows the guest and composes the program, the other viewer decodes it (the
  // host's camera and the guest's side by side).
  const since = (step) => step.then(() => Date.now() - invitedAt);
  const [toGuest, toHost, toProgram] = await Promise.all([
    since(guest.waitForFunction(() => window.chroom.guest, null, { timeout: TIMEOUT })),
    since(host.waitForFunction((peer) => window.chroom.slotPeers.includes(peer) && window.chroom.program, guestPeer, { timeout: TIMEOUT })),
    since(decodesTiles(viewer, hostPeer, 2)),
  ]);
  await guest.waitForFunction(() => window.chroom.guest && window.chroom.publishPc, null, { timeout: TIMEOUT });
  const audience = await guest.textContent("#audience");
  const hostFromGuest = await receivesFrom(host, guestPeer);
  // The voices the host's page mixes into the program: its own and the guest's.
  const mixed = await host.evaluate(() => window.chroom.program?.sounds.size ?? 0);
  const guestFromHost = await receivesFrom(guest, hostPeer);
  const viewerFromHost = await receivesFrom(viewer, hostPeer);
  const viewerShows = await tiles(viewer);

  // Off the stage: the guest watches again, and the host's page lets it go.
  const offStage = `#participants li[data-peer="${guestPeer}"] button[data-cue="remove_from_stage"]`;
  await host.click(offStage);
  await guest.waitForFunction(() => !window.chroom.guest && !window.chroom.publishPc, null, { timeout: TIMEOUT });
  await host.waitForFunction((peer) => !window.chroom.slotPeers.includes(peer), guestPeer, { timeout: TIMEOUT });
  await decodesTiles(viewer, hostPeer, 1);
  const guestWatchesAfter = await receivesFrom(guest, hostPeer);
  return {
    host: hostPeer,
    guest: guestPeer,
    audience,
    host_from_guest: hostFromGuest,
    guest_from_host: guestFromHost,
    viewer_from_host: viewerFromHost,
    viewer_shows: viewerShows,
    host_shows_after: await tiles(host),
    guest_watches_after: guestWatchesAfter,
    viewer_after: await receivesFrom(viewer, hostPeer),
    mixed_voices: mixed,
    invite_ms: { guest_joins: toGuest, host_composes: toHost, viewer_decodes: toProgram },
  };
});
