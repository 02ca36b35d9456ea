// Shared by the page scenarios: Debian's Chromium driven by playwright-core, headless, with a
// fake camera and microphone, and on request Debian's Firefox ESR driven by puppeteer-core over
// WebDriver BiDi (Playwright's Firefox is a patched build that cannot be downloaded here).
// Browsers cannot be downloaded here; the system ones are used.
import { chromium } from "playwright-core";
import puppeteer from "puppeteer-core";

// `autoplay`: let pages play sound before the user clicks anything (as a browser does for a
// site the user has played media on before); without it Chromium holds sound back.
// `cameraFps`: the fake camera's frame rate (Chromium's default is 20).
export async function launch({ autoplay = true, cameraFps } = {}) {
  const args = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--use-fake-ui-for-media-stream",
    cameraFps ? `--use-fake-device-for-media-stream=fps=${cameraFps}` : "--use-fake-device-for-media-stream",
  ];
  if (autoplay) args.push("--autoplay-policy=no-user-gesture-required");
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args });
}

// Runs `scenario(input)` with the JSON input given as the first argument and prints what it
// returns as one JSON line; a failure prints the error and exits 1 (the Rust test reports it).
export async function main(scenario, options = {}) {
  const input = JSON.parse(process.argv[2] ?? "{}");
  const browser = await launch(options);
  firefoxOptions = options;
  try {
    const output = await scenario(browser, input);
    process.stdout.write(`${JSON.stringify(output)}\n`);
  } catch (error) {
    process.stderr.write(`${error.stack ?? error}\n`);
    process.exitCode = 1;
  } finally {
    await browser.close();
    await (await firefox)?.close();
  }
}

// A page in a fresh browser context (its own cookies, its own fake devices) at `url`, in
// `browser` (Chromium) or, with `engine: "firefox"`, in the scenario's Firefox.
export async function openPage(browser, url, { engine = "chromium" } = {}) {
  if (engine === "firefox") {
    firefox ??= launchFirefox(firefoxOptions);
    const context = await (await firefox).createBrowserContext();
    const page = await context.newPage();
    await page.setViewport(VIEWPORT);
    await page.goto(url);
    return new FirefoxPage(page);
  }
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  await page.goto(url);
  return page;
}

const VIEWPORT = { width: 1280, height: 800 };

// The scenario's Firefox, launched by the first page that asks for it; closed by `main`.
let firefox = null;
let firefoxOptions = {};

// Firefox with its defaults but for fake devices granted without asking (and, with `autoplay`,
// sound allowed before a click). Its ICE prefs stay as users have them: host addresses hidden
// behind mDNS names and no loopback candidates, so a page reaches its node only through an
// address the node offers on a real interface.
async function launchFirefox({ autoplay = true } = {}) {
  const prefs = {
    "media.navigator.streams.fake": true,
    "media.navigator.permission.disabled": true,
  };
  // 0: allow audible autoplay (the default, 1, blocks it until the user interacts).
  if (autoplay) prefs["media.autoplay.default"] = 0;
  return puppeteer.launch({
    browser: "firefox",
    executablePath: process.env.FIREFOX ?? "/usr/bin/firefox-esr",
    // With a display (the tests' Xvfb) Firefox gets a window, and so a screen to share.
    headless: !process.env.DISPLAY,
    extraPrefsFirefox: prefs,
  });
}

// A puppeteer page behind the part of Playwright's page API the scenarios use, so a scenario
// runs unchanged in either engine.
class FirefoxPage {
  constructor(page) {
    this.page = page;
  }

  goto(url) {
    return this.page.goto(url);
  }

  evaluate(fn, arg) {
    return this.page.evaluate(fn, arg);
  }

  waitForFunction(fn, arg, { timeout = 30_000, polling = 100 } = {}) {
    return this.page.waitForFunction(fn, { timeout, polling }, arg);
  }

  waitForSelector(selector, { timeout = 30_000 } = {}) {
    // Playwright waits for a visible element by default.
    return this.page.waitForSelector(selector, { timeout, visible: true });
  }

  waitForTimeout(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  setViewportSize(size) {
    return this.page.setViewport(size);
  }

  click(selector) {
    return this.page.click(selector);
  }

  async press(selector, key) {
    const element = await this.page.$(selector);
    await element.press(key);
  }

  async fill(selector, value) {
    // Playwright's fill replaces the value; puppeteer's type appends to it.
    await this.page.$eval(selector, (element) => (element.value = ""));
    await this.page.type(selector, value);
  }

  async type(selector, text, { delay = 0 } = {}) {
    // Keys go where the element's caret is, as in Playwright.
    await this.page.focus(selector);
    await this.page.keyboard.type(text, { delay });
  }

  textContent(selector) {
    return this.page.$eval(selector, (element) => element.textContent);
  }

  isVisible(selector) {
    return this.page.evaluate((s) => {
      const element = document.querySelector(s);
      return Boolean(element) && element.checkVisibility();
    }, selector);
  }

  $eval(selector, fn, arg) {
    return this.page.$eval(selector, fn, arg);
  }

  $$eval(selector, fn, arg) {
    return this.page.$$eval(selector, fn, arg);
  }

  screenshot(options) {
    return this.page.screenshot(options);
  }
}

// The URL of `room` on the page served at `base` (which ends in "/").
export function roomUrl(base, room) {
  // The base carries the page's key (`?token=`): keep it.
  const url = new URL(base);
  url.pathname = `/r/${encodeURIComponent(room)}`;
  return url.toString();
}

// Waits until `check(await read(page))` holds for every one of `pages` (polled every 100 ms);
// returns what `read` gave for each. Throws what they showed if `timeout` ms pass first.
export async function untilEvery(pages, read, check, what, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const views = await Promise.all(pages.map(read));
    if (views.every(check)) return views;
    if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(views)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// Video frames a page decoded on its playback link, all m-lines together.
export async function videoFramesDecoded(page) {
  return page.evaluate(async () => {
    let frames = 0;
    (await window.chroom.playbackPc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded ?? 0;
    });
    return frames;
  });
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

const SAMPLE_MS = 250;

// Waits until each of `pages` (in one conference) plays every other, then samples for
// `watchMs` what each decodes of them. Returns { sample_ms, pages: [{ videos: { mid:
// [framesDecoded every sample_ms…] }, audio: { mid: samples }, playing, error }] }.
export async function watchEachOther(pages, watchMs, { timeout = 45_000 } = {}) {
  const others = pages.length - 1;
  for (const [i, page] of pages.entries()) {
    try {
      await page.waitForFunction(
        (n) => [...document.querySelectorAll("#grid video[data-slot]")].filter((v) => v.readyState >= 2).length === n,
        others,
        { timeout },
      );
    } catch (error) {
      throw new Error(`page ${i} does not play ${others} others: ${JSON.stringify(await describeCall(page))}`, { cause: error });
    }
  }
  const samples = pages.map(() => []);
  const rounds = Math.ceil(watchMs / SAMPLE_MS);
  for (let round = 0; round < rounds; round++) {
    const seen = await Promise.all(pages.map(inbound));
    seen.forEach((s, i) => samples[i].push(s));
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
  }
  return {
    sample_ms: SAMPLE_MS,
    pages: await Promise.all(
      pages.map(async (page, i) => {
        const videos = {};
        for (const s of samples[i]) {
          for (const [mid, frames] of Object.entries(s.videos)) (videos[mid] ??= []).push(frames);
        }
        return {
          videos,
          audio: samples[i].at(-1).audio,
          playing: await page.$$eval("#grid video[data-slot]", (vs) => vs.filter((v) => !v.paused).length),
          error: (await page.isVisible("#error")) ? await page.textContent("#error") : null,
        };
      }),
    ),
  };
}

// What a page decodes on its playback link: frames per video m-line, samples per audio one.
async function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.chroom.playbackPc;
    if (!pc) return { videos: {}, audio: {} };
    const stats = await pc.getStats();
    const videos = {};
    const audio = {};
    stats.forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      if (r.kind === "video") videos[r.mid] = r.framesDecoded ?? 0;
      if (r.kind === "audio") audio[r.mid] = r.totalSamplesReceived ?? 0;
    });
    return { videos, audio };
  });
}

// What a page in a call shows and holds, for failure messages.
export async function describeCall(page) {
  return page.evaluate(() => {
    const s = window.chroom;
    return {
      error: document.querySelector("#error").hidden ? null : document.querySelector("#error").textContent,
      participants: s.participants.map((p) => p.peer_id),
      slotPeers: s.slotPeers,
      tracks: [...s.tracks.keys()],
      screenMid: s.screenMid,
      screenPeer: s.screenPeer,
      playback: s.playbackPc?.connectionState ?? null,
      publish: s.publishPc?.connectionState ?? null,
      videos: [...document.querySelectorAll("#grid video")].map((v) => ({ slot: v.dataset.slot, ready: v.readyState })),
    };
  });
}

const SCREEN_TIMEOUT = 45_000;

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

// The first page shares its screen; the others must show it large, then see it end. The first
// viewer is photographed into `screenshot` (a path) if given.
export async function shareScreen(pages, screenshot) {
  const [presenter, ...viewers] = pages;
  await presenter.click("#share-screen");
  const presenterPeer = await presenter.evaluate(() => window.chroom.self.peerId);
  try {
    await presenter.waitForFunction(() => window.chroom.screen, null, { timeout: SCREEN_TIMEOUT });
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
        { timeout: SCREEN_TIMEOUT },
      );
    } catch (error) {
      throw new Error(`viewer ${i} does not show the screen: ${JSON.stringify(await describeCall(page))}`, { cause: error });
    }
  }
  const first = await Promise.all(viewers.map(presentation));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const second = await Promise.all(viewers.map(presentation));
  if (screenshot) await viewers[0].screenshot({ path: screenshot });
  await presenter.click("#share-screen");
  let stopped = true;
  for (const page of viewers) {
    try {
      await page.waitForFunction(() => document.querySelector("#presentation").hidden, null, { timeout: SCREEN_TIMEOUT });
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
