// Changing what the user sent: editing and deleting, from an actions menu on each of the
// user's own messages. Part of the web app (see app.js).
"use strict";

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
