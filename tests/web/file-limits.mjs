// A member's page in a room where others share files its node does not fetch by itself. One
// file is over the node's automatic limit: the page shows a "Download (N MB)" button and no
// progress; after a click the node fetches it and the page saves it. Another would not fit the
// node's file space for the room: the page says so on that file.
//
// Input: { url, room, large, refused, downloads } (`large` and `refused`: the files' hashes).
// Output: { button, waiting: { status, bar_hidden }, refused: { status, button }, saved, error }.
import { main, openPage, roomUrl } from "./lib.mjs";

const TIMEOUT = 30_000;

main(async (browser, input) => {
  const page = await openPage(browser, roomUrl(input.url, input.room));
  const large = `#messages li.file[data-hash="${input.large}"]`;
  const refused = `#messages li.file[data-hash="${input.refused}"]`;
  try {
    await page.waitForSelector(`${large}.on-request button.fetch`, { timeout: TIMEOUT });
    await page.waitForSelector(`${refused}.refused`, { timeout: TIMEOUT });
  } catch (error) {
    throw new Error(`the files never showed as expected: ${await page.textContent("#messages")}`, { cause: error });
  }
  const button = await page.textContent(`${large} button.fetch`);
  const waiting = {
    status: await page.textContent(`${large} .status`),
    bar_hidden: await page.$eval(`${large} progress`, (bar) => bar.hidden),
  };
  const refusedView = {
    status: await page.textContent(`${refused} .status`),
    button: await page.isVisible(`${refused} button.fetch`),
  };
  await page.click(`${large} button.fetch`);
  try {
    await page.waitForSelector(`${large}.complete a`, { timeout: TIMEOUT });
  } catch (error) {
    throw new Error(`the file asked for never arrived: ${await page.textContent(large)}`, { cause: error });
  }
  const [download] = await Promise.all([page.waitForEvent("download"), page.click(`${large}.complete a`)]);
  const saved = `${input.downloads}/${download.suggestedFilename()}`;
  await download.saveAs(saved);
  return {
    button,
    waiting,
    refused: refusedView,
    saved,
    error: (await page.isVisible("#error")) ? await page.textContent("#error") : null,
  };
});
