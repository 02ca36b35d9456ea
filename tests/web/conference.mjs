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
import { main, openPage, roomUrl, shareScreen, watchEachOther } from "./lib.mjs";

const TIMEOUT = 45_000;

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
  const screen = await shareScreen(pages, input.screenshots && `${input.screenshots}/presentation.png`);
  const sharing = await shareFile(pages, input.file, input.downloads);
  if (input.screenshots) await pages[1].screenshot({ path: `${input.screenshots}/file-received.png` });
  return { ...watched, screen, sharing };
  // Three pages, three nodes and the chain share two cores: at Chromium's default 20 fps the
  // machine itself delays packets enough, now and then, for the nodes' delay-based estimates
  // to collapse and a member's video to pause. The fake cameras run at 10 fps here.
}, { cameraFps: 10 });
