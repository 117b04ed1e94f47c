// Editing and deleting one's own messages in the web app, as the browser test drives it
// (see browser.test.mjs, which calls it on a desktop and on a phone).
import { WAIT, byId, fail, message, openConversation, send, step, until } from "./helpers.mjs";

// The sender changes their own messages from each one's actions menu: by keyboard on a
// desktop, by touch on a phone. The other side sees each change live; after a reload both
// show it from history. Nobody is offered changes to the other side's messages.
export async function changeMessages(sender, receiver, { touch, tag }) {
  const press = (locator) => (touch ? locator.tap() : locator.click());
  const menuItem = (name) => sender.locator("#message-menu [role=menuitem]", { hasText: name });
  const pages = [sender, receiver];
  const sent = async (text) => {
    await send(sender, text);
    await message(receiver, text).waitFor({ timeout: WAIT });
    return message(sender, text).getAttribute("data-message-id");
  };
  const reload = async (page) => {
    await page.reload();
    await page.locator('#connection[data-state="online"]').waitFor({ timeout: WAIT });
    await page.locator("#messages .message[data-message-id]").first().waitFor({ timeout: WAIT });
  };

  for (const page of pages) {
    if (await page.locator("#messages .message.theirs .message-actions").count()) fail(`${tag}: another's message offers changes`);
    if (!(await page.locator("#messages .message.mine .message-actions").count())) fail(`${tag}: no own message offers changes`);
  }
  if (touch) {
    const size = await sender.locator("#messages .message.mine .message-actions").first().boundingBox();
    if (size.width < 36 || size.height < 36) fail(`${tag}: the actions button is ${size.width} x ${size.height} px, small for a finger`);
  }

  const edited = await sent(`Meet at the north gate (${tag})`);
  const newText = `Meet at the south gate (${tag})`;
  if (touch) {
    await press(byId(sender, edited).locator(".message-actions"));
    const box = await sender.locator("#message-menu").boundingBox();
    const width = await sender.evaluate(() => window.innerWidth);
    if (box.x < 0 || box.x + box.width > width) fail(`${tag}: the menu runs off the screen: ${JSON.stringify(box)}`);
    await press(menuItem("Edit"));
    await byId(sender, edited).locator(".message-editor textarea").fill(newText);
    await press(byId(sender, edited).locator(".message-editor button", { hasText: "Save" }));
  } else {
    await byId(sender, edited).locator(".message-actions").focus();
    await sender.keyboard.press("Enter");
    await until("the menu's first item, Edit, to have focus", () => sender.evaluate(() =>
      document.activeElement.getAttribute("role") === "menuitem" && document.activeElement.textContent === "Edit"));
    if ((await byId(sender, edited).locator(".message-actions").getAttribute("aria-expanded")) !== "true") fail("the open menu is not announced");
    await sender.keyboard.press("ArrowDown");
    await sender.keyboard.press("ArrowDown"); // round to Edit again
    await sender.keyboard.press("Enter");
    const input = byId(sender, edited).locator(".message-editor textarea");
    await until("the editor to have focus", () => input.evaluate((node) => node === document.activeElement));
    await sender.keyboard.press("Control+A");
    await sender.keyboard.type(newText);
    await sender.keyboard.press("Enter");
  }
  for (const page of pages) {
    await byId(page, edited).locator(".message-text", { hasText: newText }).waitFor({ timeout: WAIT });
    await byId(page, edited).locator(".meta .edited").waitFor({ timeout: WAIT });
    if (!/^Edited /.test(await byId(page, edited).locator(".edited").getAttribute("title"))) fail(`${tag}: the edit's time is not given`);
  }
  if (!touch && !(await sender.evaluate(() => document.activeElement.classList.contains("message-actions")))) {
    fail("after saving, focus did not return to the message's actions");
  }

  if (!touch) {
    step("past the edit window, the menu offers only Delete; Escape closes it");
    const offered = await sender.evaluate((id) => {
      const now = Date.now;
      Date.now = () => now() + 16 * 60_000; // as if the message were 16 minutes old
      try {
        document.querySelector(`#messages .message[data-message-id="${id}"] .message-actions`).click();
        return [...document.querySelectorAll("#message-menu [role=menuitem]")].map((item) => item.textContent);
      } finally {
        Date.now = now;
      }
    }, edited);
    if (JSON.stringify(offered) !== '["Delete"]') fail(`an old message's menu offers ${JSON.stringify(offered)}`);
    await sender.keyboard.press("Escape");
    await sender.locator("#message-menu").waitFor({ state: "detached", timeout: WAIT });
    if (!(await sender.evaluate(() => document.activeElement.classList.contains("message-actions")))) fail("Escape did not return focus to the actions");

    step("a refused edit says why and leaves the message as it was");
    const refuse = (route) => (route.request().method() === "PATCH"
      ? route.fulfill({ status: 403, contentType: "application/problem+json",
        body: JSON.stringify({ type: "urn:chat:problem:forbidden", title: "Forbidden", status: 403, detail: "the message is too old to edit" }) })
      : route.fallback());
    await sender.context().route("**/v1/conversations/*/messages/*", refuse);
    await press(byId(sender, edited).locator(".message-actions"));
    await press(menuItem("Edit"));
    await byId(sender, edited).locator(".message-editor textarea").fill("Never shown");
    await press(byId(sender, edited).locator(".message-editor button", { hasText: "Save" }));
    await sender.locator("#notice", { hasText: "the message is too old to edit" }).waitFor({ timeout: WAIT });
    await byId(sender, edited).locator(".message-text", { hasText: newText }).waitFor({ timeout: WAIT });
    if (await byId(sender, edited).locator(".message-editor").count()) fail("the editor stayed after a refusal");
    await sender.context().unroute("**/v1/conversations/*/messages/*", refuse);
  }

  const doomed = `Wrong address, ignore this (${tag})`;
  const deleted = await sent(doomed);
  await press(byId(sender, deleted).locator(".message-actions"));
  await press(menuItem("Delete"));
  await sender.locator("#delete-dialog").waitFor({ timeout: WAIT });
  await press(sender.locator("#delete-dialog button", { hasText: "Cancel" }));
  await sender.locator("#delete-dialog").waitFor({ state: "hidden", timeout: WAIT });
  if (!(await byId(sender, deleted).locator(".message-text", { hasText: doomed }).count())) fail(`${tag}: a cancelled deletion deleted`);
  await press(byId(sender, deleted).locator(".message-actions"));
  await press(menuItem("Delete"));
  await press(sender.locator("#delete-dialog button", { hasText: "Delete" }));
  const isDeleted = async (page, id, text, who) => {
    await byId(page, id).locator(".deleted-text", { hasText: "This message was deleted" }).waitFor({ timeout: WAIT });
    const shown = await byId(page, id).textContent();
    if (text && shown.includes(text)) fail(`${who} still shows the deleted text: ${shown}`);
    if (await byId(page, id).locator(".message-actions, .attachment, .message-text").count()) fail(`${who} shows more than the placeholder`);
  };
  for (const page of pages) await isDeleted(page, deleted, doomed, tag);

  let attached = null;
  if (!touch) {
    step("alice deletes her file: the attachment goes with it");
    attached = await sender.locator("#messages .message.mine[data-message-id]", { has: sender.locator("button.attachment", { hasText: "notes.txt" }) })
      .getAttribute("data-message-id");
    await press(byId(sender, attached).locator(".message-actions"));
    await press(menuItem("Delete"));
    await press(sender.locator("#delete-dialog button", { hasText: "Delete" }));
    for (const page of pages) await isDeleted(page, attached, "notes.txt", tag);
  }

  for (const page of pages) {
    await reload(page);
    await byId(page, edited).locator(".message-text", { hasText: newText }).waitFor({ timeout: WAIT });
    await byId(page, edited).locator(".meta .edited").waitFor({ timeout: WAIT });
    await isDeleted(page, deleted, doomed, `${tag} after a reload`);
    if (attached) await isDeleted(page, attached, "notes.txt", `${tag} after a reload`);
  }
  for (const page of pages) {
    if (await page.locator("#messages .message.theirs .message-actions").count()) fail(`${tag}: another's message offers changes after a reload`);
  }
  if (touch) {
    const overflow = await sender.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) fail(`the phone's page is ${overflow} px too wide with the actions`);
    // Reloaded, the phone has no inbox to go back to in its history; open the conversation
    // from the inbox again, as the steps after this expect.
    const id = await sender.evaluate(() => location.hash.slice(2));
    await sender.click("#back");
    await sender.locator(".inbox-pane").waitFor({ timeout: WAIT });
    await openConversation(sender, id);
  }
}
