// The user's own messages. Sending: every message waits in the client's outbox (IndexedDB,
// so a reload or a closed tab loses nothing) until acknowledged; each is sent again on
// every connection, and its idempotency key makes a repeat the same message. The page
// shows what waits, keyed alike. Then changing what was sent: editing and deleting, from
// an actions menu on each of the user's messages. Part of the web app (see app.js).
"use strict";

// ---------- sending ----------

function sendMessage(text) {
  const open = state.open;
  if (!open || !text.trim()) return;
  const entry = { key: crypto.randomUUID(), conversation_id: open.id, text, attachment: null };
  state.pending.set(entry.key, entry);
  showPending(entry);
  state.client.send(open.id, text, { key: entry.key }).catch(() => { /* onFailed shows it */ });
  stopTyping();
}

// What the client's outbox held when the page loaded: sends of an earlier page.
function loadOutbox() {
  for (const entry of state.client.pending()) state.pending.set(entry.key, Object.assign({}, entry));
}

// Removes a send from the page (acknowledged, arrived, or discarded).
function settle(key) {
  const entry = state.pending.get(key);
  if (!entry) return null;
  state.pending.delete(key);
  if (entry.node) entry.node.remove();
  return entry;
}

function messageTypeOf(entry) {
  if (!entry.attachment) return "TEXT";
  return entry.attachment.mime_type.startsWith("image/") ? "IMAGE" : "FILE";
}

// The pending (or failed) bubble of `entry`, if its conversation is open.
function showPending(entry) {
  const open = state.open;
  if (!open || open.id !== entry.conversation_id) return;
  const li = el("li", "message mine " + (entry.failed ? "failed" : "pending"));
  li.dataset.pendingRef = entry.key;
  const bubble = el("div", "bubble");
  const name = entry.uploading || (entry.attachment && entry.attachment.name);
  if (entry.text) bubble.append(el("div", "message-text", entry.text));
  if (name) bubble.append(el("div", "message-text file-link", name));
  bubble.append(el("div", "meta", entry.failed ? "Not sent: " + entry.failed : "Sending…"));
  if (entry.failed) {
    const retry = el("button", "link", "Retry");
    retry.type = "button";
    retry.addEventListener("click", () => {
      entry.failed = null;
      showPending(entry);
      state.client.retry(entry.key);
    });
    const discard = el("button", "link", "Delete");
    discard.type = "button";
    discard.addEventListener("click", () => {
      settle(entry.key);
      state.client.discard(entry.key);
    });
    bubble.append(retry, discard);
  }
  li.append(bubble);
  if (entry.node) entry.node.replaceWith(li); else $("messages").append(li);
  entry.node = li;
  scrollToEnd();
}

function onSent({ key, conversationId, messageId }) {
  const entry = settle(key);
  const open = state.open;
  if (!entry || !open || open.id !== conversationId) return;
  if (!open.messages.has(messageId)) {
    // The message frame has not arrived yet; show it as confirmed meanwhile.
    addMessage({
      id: messageId, conversation_id: open.id, sender_id: state.me.user_id,
      sender_name: state.me.name, text: entry.text, message_type: messageTypeOf(entry),
      attachment: entry.attachment || undefined,
      sent_at: new Date().toISOString(), is_read: false, idempotency_key: key,
    }, true);
  }
}

function onFailed({ key, detail }) {
  const entry = state.pending.get(key);
  if (!entry) return;
  entry.failed = detail;
  showPending(entry);
}

// ---------- editing and deleting ----------

// A button, not a hover: phones have no hover, and keyboards reach a button.
function actionsButton(message) {
  const button = el("button", "message-actions");
  button.type = "button";
  const what = message.text || (message.attachment ? message.attachment.name : "");
  const short = what.length > 40 ? what.slice(0, 40) + "…" : what;
  button.setAttribute("aria-label", "Edit or delete your message" + (short ? ": " + short : ""));
  button.setAttribute("aria-haspopup", "menu");
  button.setAttribute("aria-expanded", "false");
  button.title = "Edit or delete";
  // Three dots, drawn: a character would depend on the font.
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  for (const x of [5, 12, 19]) {
    const dot = document.createElementNS("http://www.w3.org/2000/svg", "circle");
    dot.setAttribute("cx", x);
    dot.setAttribute("cy", 12);
    dot.setAttribute("r", 2);
    svg.append(dot);
  }
  button.append(svg);
  button.addEventListener("click", () => {
    if (state.menu && state.menu.button === button) closeMenu(true);
    else openMenu(button, message.id);
  });
  return button;
}

function openMenu(button, id) {
  closeMenu(false);
  const message = state.open && state.open.messages.get(id);
  if (!message || message.deleted) return;
  const menu = el("div", "message-menu");
  menu.id = "message-menu";
  menu.setAttribute("role", "menu");
  menu.setAttribute("aria-label", "Message actions");
  const items = [];
  // The server refuses edits after its window; the menu offers what it would take.
  if (Date.now() - Date.parse(message.sent_at) < EDIT_WINDOW_MS) items.push(menuItem("Edit", () => startEdit(id)));
  items.push(menuItem("Delete", () => askDelete(id), "danger"));
  menu.append(...items);
  menu.addEventListener("keydown", (event) => {
    const at = items.indexOf(document.activeElement);
    const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 }[event.key];
    if (to !== undefined) {
      event.preventDefault();
      items[(to + items.length) % items.length].focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      closeMenu(true);
    } else if (event.key === "Tab") {
      closeMenu(false);
    }
  });
  button.after(menu);
  button.setAttribute("aria-expanded", "true");
  button.setAttribute("aria-controls", menu.id);
  // Above the button when there is no room below it in the list.
  const room = $("message-scroll").getBoundingClientRect().bottom - button.getBoundingClientRect().bottom;
  if (room < menu.offsetHeight + 8) menu.classList.add("above");
  state.menu = { menu, button };
  items[0].focus();
}

function menuItem(label, action, className) {
  const item = el("button", className, label);
  item.type = "button";
  item.tabIndex = -1;
  item.setAttribute("role", "menuitem");
  item.addEventListener("click", () => {
    closeMenu(false);
    action();
  });
  return item;
}

function closeMenu(refocus) {
  const shown = state.menu;
  if (!shown) return;
  state.menu = null;
  shown.menu.remove();
  shown.button.setAttribute("aria-expanded", "false");
  shown.button.removeAttribute("aria-controls");
  if (refocus && shown.button.isConnected) shown.button.focus();
}

// A tap or click anywhere else closes the menu.
function onPointerDown(event) {
  if (state.menu && !state.menu.menu.contains(event.target) && !state.menu.button.contains(event.target)) closeMenu(false);
}

// The text becomes an editor in place; the message is drawn again around it (see
// messageNode), so what is typed survives the message being drawn again meanwhile.
function startEdit(id) {
  const open = state.open;
  const message = open.messages.get(id);
  if (!message || message.deleted) return;
  if (open.editing) endEdit(false);
  const form = el("form", "message-editor");
  form.setAttribute("aria-label", "Edit message");
  const input = el("textarea");
  input.value = message.text;
  input.dir = "auto";
  input.rows = 1;
  input.setAttribute("aria-label", "Message text (Enter saves, Shift+Enter starts a new line, Escape cancels)");
  const cancel = el("button", "cancel", "Cancel");
  cancel.type = "button";
  const save = el("button", "primary", "Save");
  save.type = "submit";
  const buttons = el("div", "editor-buttons");
  buttons.append(cancel, save);
  form.append(input, buttons);
  form.addEventListener("submit", (event) => { event.preventDefault(); saveEdit(); });
  cancel.addEventListener("click", () => endEdit(true));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit(); }
    if (event.key === "Escape") { event.preventDefault(); endEdit(true); }
  });
  input.addEventListener("input", () => fitEditor(input));
  open.editing = { id, form, input, save, cancel };
  showMessage(message);
  fitEditor(input);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

function fitEditor(input) {
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight + 2, 200) + "px";
}

// Back to the message as it stands; focus to its actions when the editor had it.
function endEdit(refocus) {
  const open = state.open;
  const editing = open && open.editing;
  if (!editing) return;
  open.editing = null;
  const message = open.messages.get(editing.id);
  if (message) showMessage(message);
  const node = $("messages").querySelector('.message[data-message-id="' + editing.id + '"]');
  if (refocus && node) focusWithin(node, null);
}

async function saveEdit() {
  const open = state.open;
  const editing = open.editing;
  const message = open.messages.get(editing.id);
  const text = editing.input.value;
  if (text === message.text) { endEdit(true); return; }
  if (!text.trim() && !message.attachment) { notice("A message needs text: delete it instead."); return; }
  if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES) { notice("Too long: a message holds " + MAX_TEXT_BYTES + " bytes."); return; }
  editing.save.disabled = editing.cancel.disabled = true;
  try {
    await state.client.editMessage(open.id, editing.id, text);
  } catch (error) {
    editing.save.disabled = editing.cancel.disabled = false;
    // "403: …": the status is for us, the detail for the reader.
    const [, status, detail] = /^(?:(\d+): )?([\s\S]*)$/.exec(error.message);
    notice("Not edited: " + detail);
    if (open.editing !== editing) return;
    // Refused for good (too late, not theirs, deleted): the message as it stands. Else
    // (offline, say) what was typed stays, to save again.
    if (["403", "404", "409"].includes(status)) endEdit(true); else editing.input.focus();
    return;
  }
  if (state.open !== open || open.editing !== editing) return;
  open.editing = null;
  // Shown at once; the change's frame follows with the server's time of the edit.
  applyChange({
    conversation_id: open.id, message_id: editing.id, position: 0,
    change: { kind: "edited", text, edited_at: new Date().toISOString() },
  });
  focusWithin($("messages").querySelector('.message[data-message-id="' + editing.id + '"]'), null);
}

// Asked in the page (a dialog of index.html), the same on every device.
function askDelete(id) {
  const open = state.open;
  open.deleting = id;
  const dialog = $("delete-dialog");
  dialog.returnValue = "";
  dialog.showModal();
}

async function onDeleteDialogClosed() {
  const open = state.open;
  const id = open && open.deleting;
  if (!id) return;
  open.deleting = null;
  const node = () => $("messages").querySelector('.message[data-message-id="' + id + '"]');
  if ($("delete-dialog").returnValue !== "delete") {
    if (node()) focusWithin(node(), null);
    return;
  }
  try {
    await state.client.deleteMessage(open.id, id);
  } catch (error) {
    notice("Not deleted: " + error.message.replace(/^\d+: /, ""));
    return;
  }
  if (state.open !== open) return;
  applyChange({ conversation_id: open.id, message_id: id, position: 0, change: { kind: "deleted", deleted_at: new Date().toISOString() } });
  if (node()) focusWithin(node(), null);
}
