// Shared by the page scenarios: Debian's Chromium driven by playwright-core, headless, with a
// fake camera and microphone. Browsers cannot be downloaded here; the system one is used.
import { chromium } from "playwright-core";

// `autoplay`: let pages play sound before the user clicks anything (as a browser does for a
// site the user has played media on before); without it Chromium holds sound back.
export async function launch({ autoplay = true } = {}) {
  const args = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
  ];
  if (autoplay) args.push("--autoplay-policy=no-user-gesture-required");
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args });
}

// Runs `scenario(input)` with the JSON input given as the first argument and prints what it
// returns as one JSON line; a failure prints the error and exits 1 (the Rust test reports it).
export async function main(scenario, options = {}) {
  const input = JSON.parse(process.argv[2] ?? "{}");
  const browser = await launch(options);
  try {
    const output = await scenario(browser, input);
    process.stdout.write(`${JSON.stringify(output)}\n`);
  } catch (error) {
    process.stderr.write(`${error.stack ?? error}\n`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

// A page in a fresh browser context (its own cookies, its own fake devices) at `url`.
export async function openPage(browser, url) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(url);
  return page;
}

// The URL of `room` on the page served at `base` (which ends in "/").
export function roomUrl(base, room) {
  // The base carries the page's key (`?token=`): keep it.
  const url = new URL(base);
  url.pathname = `/r/${encodeURIComponent(room)}`;
  return url.toString();
}

// The participant list a page shows: [{ name, role }].
export async function participants(page) {
  return page.$$eval("#participants li", (items) =>
    items.map((item) => ({
      peer: item.dataset.peer,
      name: item.querySelector(".name").textContent,
      role: item.querySelector(".role").textContent,
    })),
  );
}
