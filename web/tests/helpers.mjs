// What the browser tests share: waiting, failing, and a user's common moves in the app.
// Imported by browser.test.mjs and message-changes.mjs.

export const WAIT = 10_000; // every wait for a result polls up to this long

const started = Date.now();

export function step(text) {
  const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  console.log(`[${seconds}s] ${text}`);
}

export function fail(reason) {
  throw new Error(reason);
}

// Polls `probe` until it returns a truthy value; fails with `what` after the timeout.
export async function until(what, probe, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (error) {
      last = error.message;
    }
    if (Date.now() > deadline) fail(`timed out after ${timeout} ms waiting for: ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export const message = (page, text) => page.locator("#messages .message[data-message-id]", { hasText: text });
export const byId = (page, id) => page.locator(`#messages .message[data-message-id="${id}"]`);
export const item = (page, id) => page.locator(`#conversation-list [data-conversation-id="${id}"]`);

export async function openConversation(page, id) {
  await item(page, id).click();
  await page.locator(`#conversation-list .active[data-conversation-id="${id}"]`).waitFor({ state: "attached", timeout: WAIT });
  await until("the conversation to be loaded", () => page.evaluate(() => !document.getElementById("conversation").hidden));
}

export async function send(page, text) {
  await page.fill("#message-input", text);
  await page.click("#send-button");
  await message(page, text).waitFor({ timeout: WAIT });
  await until(`"${text}" to be acknowledged`, async () => (await page.locator("#messages .message.pending").count()) === 0);
}
