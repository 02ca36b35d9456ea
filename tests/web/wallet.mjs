// A node with no account of its own: its page is refused a room until the user signs in with a
// browser wallet (EIP-1193). The wallet here is a test double that signs with the chain's dev
// account over its RPC, as a wallet extension signs with its key. Then the page joins, and a
// member on another node sees it with the wallet account's role.
//
// Input: { room, wallet_page, other_page, rpc, wallet_account } (page URLs, anvil's URL).
// Output: { refusal, who, roster, renewed (the node's answer to a renewal), still_in_call }.
import { main, openPage, participants, roomUrl } from "./lib.mjs";

const TIMEOUT = 30_000;

main(async (browser, input) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  let id = 0;
  await context.exposeFunction("walletRpc", async (method, params) => {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return [input.wallet_account];
    const response = await fetch(input.rpc, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }),
    });
    const answer = await response.json();
    if (answer.error) throw new Error(answer.error.message);
    return answer.result;
  });
  await context.addInitScript(() => {
    window.ethereum = { request: ({ method, params }) => window.walletRpc(method, params ?? []) };
  });
  const page = await context.newPage();
  await page.goto(roomUrl(input.wallet_page, input.room));
  await page.waitForSelector("#error:not([hidden])", { timeout: TIMEOUT });
  const refusal = await page.textContent("#error");

  await page.click("#wallet-button");
  await page.waitForFunction((account) => document.querySelector("#who").textContent.toLowerCase().includes(account.toLowerCase()), input.wallet_account, { timeout: TIMEOUT });
  const who = await page.textContent("#who");
  await page.fill("#room-input", input.room);
  await page.click("#join-button");
  await page.waitForSelector("#call:not([hidden])", { timeout: TIMEOUT });

  const other = await openPage(browser, roomUrl(input.other_page, input.room));
  for (const p of [page, other]) {
    await p.waitForFunction(() => document.querySelectorAll("#participants li").length === 2, null, { timeout: TIMEOUT });
  }

  // The renewal the page asks for before the signature runs out, in the room: taken.
  await page.evaluate(() => {
    window.__renewed = new Promise((resolve) => {
      window.chroom.socket.addEventListener("message", (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "hello" || message.type === "error") resolve(message);
      });
    });
    window.chroom.socket.send(JSON.stringify({ type: "sign_in_text" }));
  });
  const renewed = await page.evaluate(() => window.__renewed);
  return { refusal, who, roster: await participants(other), renewed, still_in_call: await page.isVisible("#call") };
});
