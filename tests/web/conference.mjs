// Three members' pages join one conference, each from its own node, and send their (fake)
// cameras and microphones. Each page then samples, for `watch_ms`, what it decodes of the
// others: per video stream the frames decoded (every 250 ms), per audio stream the samples.
// Then the first page shares its (fake) screen, the other two show it, and it stops. Last the
// first page says something and shares a file; the others read the line, watch the file's
// progress, and download it once their nodes hold it whole.
//
// Input: { urls: [..3], room, watch_ms, screenshots, file, downloads }.
// Output: { pages: [{ videos: { mid: [framesDecoded…] }, audio: { mid: samples }, tiles }],
//           screen: { presenter, shared: { width, height }, viewers: [{ peer, label, width,
//           height, frames: [framesDecoded…] }], stopped },
//           sharing: { hash, sender_status, receivers: [{ chat, progress: [received…], saved }] } }.
import { describeCall, main, openPage, roomUrl, watchEachOther } from "./lib.mjs";

const TIMEOUT = 45_000;

// What a page shows of a shared screen: the presenter, the picture's size, and the frames
// decoded on the playback link's screen m-line.
async function presentation(page) {
  return page.evaluate(async () => {
    const s = window.chroom;
    const video = document.querySelector("#presentation-video");
    let frames = 0;
    const stats = await s.playbackPc.getStats();
    stats.forEach((r) => {
      if (r.type === "inbound-rtp" && r.mid === s.screenMid) frames = r.framesDecoded ?? 0;
    });
    return {
      peer: document.querySelector("#presentation").dataset.peer ?? null,
      label: document.querySelector("#presentation-label").textContent,
      width: video.videoWidth,
      height: video.videoHeight,
      frames,
    };
  });
}

// The first page shares its screen; the others must show it large, then see it end.
async function shareScreen(pages, screenshots) {
  const [presenter, ...viewers] = pages;
  await presenter.click("#share-screen");
  const presenterPeer = await presenter.evaluate(() => window.chroom.self.peerId);
  try {
    await presenter.waitForFunction(() => window.chroom.screen, null, { timeout: TIMEOUT });
  } catch (error) {
    throw new Error(`the presenter's screen was not captured: ${JSON.stringify(await describeCall(presenter))}`, { cause: error });
  }
  const shared = await presenter.evaluate(() => window.chroom.screen.getVideoTracks()[0].getSettings());
  for (const [i, page] of viewers.entries()) {
    try {
      await page.waitForFunction(
        (peer) =>
          !document.querySelector("#presentation").hidden &&
          document.querySelector("#presentation").dataset.peer === peer &&
          document.querySelector("#presentation-video").readyState >= 2,
        presenterPeer,
        { timeout: TIMEOUT },
      );
    } catch (error) {
      throw new Error(`viewer ${i} does not show the screen: ${JSON.stringify(await describeCall(page))}`, { cause: error });
    }
  }
  const first = await Promise.all(viewers.map(presentation));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const second = await Promise.all(viewers.map(presentation));
  if (screenshots) await viewers[0].screenshot({ path: `${screenshots}/presentation.png` });
  await presenter.click("#share-screen");
  let stopped = true;
  for (const page of viewers) {
    try {
      await page.waitForFunction(() => document.querySelector("#presentation").hidden, null, { timeout: TIMEOUT });
    } catch {
      stopped = false;
    }
  }
  return {
    presenter: presenterPeer,
    shared: { width: shared.width, height: shared.height },
    viewers: second.map((seen, i) => ({ ...seen, frames: [first[i].frames, seen.frames] })),
    stopped,
  };
}

// The first page says a line and shares `file`; the others download it into `downloads`.
async function shareFile(pages, file, downloads) {
  const [sender, ...receivers] = pages;
  const line = "notes for today attached";
  await sender.fill("#chat-input", line);
  await sender.click("#chat-send");
  await sender.setInputFiles("#file-input", file);
  const watched = receivers.map(async (page, i) => {
    await page.waitForFunction((text) => [...document.querySelectorAll("#messages .text")].some((t) => t.textContent === text), line, { timeout: TIMEOUT });
    const progress = [];
    const deadline = Date.now() + TIMEOUT;
    while (!(await page.isVisible("#messages li.file.complete a"))) {
      if (Date.now() > deadline) throw new Error(`receiver ${i} never held the file: ${await page.textContent("#messages")}`);
      const received = await page.$eval("#messages li.file progress", (bar) => bar.value).catch(() => null);
      if (received !== null && progress.at(-1) !== received) progress.push(received);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#messages li.file.complete a")]);
    const saved = `${downloads}/receiver-${i}-${download.suggestedFilename()}`;
    await download.saveAs(saved);
    return {
      chat: await page.$$eval("#messages .text", (texts) => texts.map((t) => t.textContent)),
      progress,
      status: await page.textContent("#messages li.file .status"),
      saved,
    };
  });
  const received = await Promise.all(watched);
  await sender.waitForSelector("#messages li.file.complete", { timeout: TIMEOUT });
  return {
    hash: await sender.$eval("#messages li.file", (item) => item.dataset.hash),
    sender_status: await sender.textContent("#messages li.file .status"),
    receivers: received,
  };
}

main(async (browser, input) => {
  const pages = [];
  for (const url of input.urls) {
    pages.push(await openPage(browser, roomUrl(url, input.room)));
  }
  const watched = await watchEachOther(pages, input.watch_ms);
  if (input.screenshots) {
    await pages[0].screenshot({ path: `${input.screenshots}/conference.png` });
  }
  const screen = await shareScreen(pages, input.screenshots);
  const sharing = await shareFile(pages, input.file, input.downloads);
  if (input.screenshots) await pages[1].screenshot({ path: `${input.screenshots}/file-received.png` });
  return { ...watched, screen, sharing };
});
