// Host failover: four members' pages in one conference whose policy makes the first joiner
// host while no on-chain host is present. The on-chain host's node is a process of its own;
// once every page shows it hosting, its node gets `kill -9`. Every other page must then show
// the same member as acting host, and that member's page its host controls; the time from
// the kill to each page showing it is measured. Then the host's node is started again (same
// data dir, so the same node) and its page opened: every page must show it hosting again and
// the acting host's controls go.
//
// Input: { room, host: { url, pid, command, args }, members: [url…] } (host.command/args
//        start its node again; its log prints the page link as "web http://…").
// Output: { failover_ms: [per remaining page], acting: peer, reclaim_ms, pages: […] }.
import { spawn } from "node:child_process";
import { main, openPage, roomUrl } from "./lib.mjs";

const TIMEOUT = 30_000;

// What a page shows of who hosts: [{ peer, hosting, acting, is_self }], and whether it shows
// host controls (mute and remove buttons on others).
const hostingShown = (page) =>
  page.evaluate(() => ({
    participants: (window.chroom.participants ?? []).map((p) => ({
      peer: p.peer_id,
      hosting: p.hosting,
      acting: p.acting_host,
      is_self: p.is_self,
    })),
    controls: document.querySelectorAll("#participants .host-actions").length,
  }));

// Waits until `check(shown)` holds on `page`; returns the milliseconds since `since`.
async function until(page, check, since, what) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const shown = await hostingShown(page);
    if (check(shown)) return Date.now() - since;
    if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(shown)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const hostsAre = (peers) => (shown) => {
  const hosting = shown.participants.filter((p) => p.hosting).map((p) => p.peer);
  return hosting.length === peers.length && peers.every((peer) => hosting.includes(peer));
};

// Starts the host's node again and returns its page link and the process.
function restart({ command, args }) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the host's node did not print its page link: ${out}`)), TIMEOUT);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const link = out.match(/^web (http\S+)/m);
      if (link) {
        clearTimeout(timer);
        resolve({ child, link: link[1] });
      }
    });
    child.on("exit", (code) => reject(new Error(`the host's node exited (${code}): ${out}`)));
  });
}

main(async (browser, input) => {
  const hostPage = await openPage(browser, roomUrl(input.host.url, input.room));
  const members = [];
  for (const url of input.members) members.push(await openPage(browser, roomUrl(url, input.room)));
  const everyone = [hostPage, ...members];
  const count = everyone.length;
  for (const page of everyone) {
    await page.waitForFunction((n) => (window.chroom.participants ?? []).length === n, count, { timeout: TIMEOUT });
  }
  const hostPeer = await hostPage.evaluate(() => window.chroom.self.peerId);
  const memberPeers = [];
  for (const page of members) memberPeers.push(await page.evaluate(() => window.chroom.self.peerId));
  for (const page of everyone) await until(page, hostsAre([hostPeer]), Date.now(), "the on-chain host hosts");
  const controlsBefore = await Promise.all(members.map(async (page) => (await hostingShown(page)).controls));

  // kill -9 of the host's node: no goodbye, its sockets just go.
  const killedAt = Date.now();
  process.kill(input.host.pid, "SIGKILL");
  await hostPage.close();
  const failover_ms = await Promise.all(
    members.map((page) =>
      until(
        page,
        (shown) => {
          const hosts = shown.participants.filter((p) => p.hosting);
          return hosts.length === 1 && hosts[0].acting && hosts[0].peer !== hostPeer;
        },
        killedAt,
        "an acting host after the kill",
      ),
    ),
  );
  const views = await Promise.all(members.map(hostingShown));
  const acting = views[0].participants.find((p) => p.hosting).peer;
  for (const view of views) {
    if (view.participants.find((p) => p.hosting).peer !== acting) throw new Error(`pages disagree: ${JSON.stringify(views)}`);
  }
  const actingPage = members[memberPeers.indexOf(acting)];
  await until(actingPage, (shown) => shown.controls === count - 2, killedAt, "the acting host's controls");

  // The host comes back: its node again, its page again.
  const { child, link } = await restart(input.host);
  try {
    const backAt = Date.now();
    const back = await openPage(browser, roomUrl(link, input.room));
    const reclaim_ms = await Promise.all(
      [...members, back].map((page) => until(page, hostsAre([hostPeer]), backAt, "the host reclaims")),
    );
    await until(actingPage, (shown) => shown.controls === 0, backAt, "the acting host's controls go");
    return {
      host: hostPeer,
      acting,
      members: memberPeers,
      controls_before: controlsBefore,
      failover_ms,
      reclaim_ms,
      after: await Promise.all([...members, back].map(hostingShown)),
    };
  } finally {
    child.kill("SIGKILL");
  }
});
