// The open conversation: its messages in order (as edited or deleted since), read
// receipts, scrolling, and the typing and presence of the other side. Part of the web app
// (see app.js).
"use strict";

// ---------- the open conversation ----------

async function openConversation(id) {
  if (state.open && state.open.id === id) {
    // On a phone the inbox may stand in front of it (back after a reload leaves no entry
    // to go forward to): chosen again, it comes back.
    if ($("chat-view").dataset.pane !== "conversation") {
      history.pushState({ conversation: id, fromInbox: true }, "", "#c" + id);
      $("chat-view").dataset.pane = "conversation";
      markRead();
    }
    return;
  }
  if (state.open) state.client.unsubscribe(state.open.id);
  if ($("delete-dialog").open) $("delete-dialog").close(); // it asked about the other one
  const item = state.inbox.get(id);
  const open = {
    id, item, loaded: false, subscribed: false,
    messages: new Map(), // id -> message
    lastPosition: 0, readSent: 0, otherRead: 0, nextBefore: null, atEnd: true,
    loadingOlder: false,
    // What was read when the conversation was opened: the divider goes above the first
    // message after it (null when nothing was unread).
    readAtOpen: item && item.unread_count > 0 ? item.last_read_id : null,
    typingSentAt: 0, typingIdle: null, typingHide: null,
    editing: null, // the editor of the message whose text is being edited (outbox.js)
    deleting: null, // the id of the message the delete dialog asks about
  };
  closeMenu();
  state.open = open;
  // From the inbox, a new history entry, so that a phone's back button returns to it.
  if (/^#c\d+$/.test(location.hash)) history.replaceState({ conversation: id }, "", "#c" + id);
  else history.pushState({ conversation: id, fromInbox: true }, "", "#c" + id);
  $("chat-view").dataset.pane = "conversation";
  $("no-conversation").hidden = true;
  $("conversation").hidden = false;
  $("messages").replaceChildren();
  $("typing").hidden = true;
  // Connected, a participant the chat has not heard from is offline; disconnected, we
  // cannot know.
  if (state.connected) setPresence("offline"); else presenceUnknown();
  showHeader(open);
  renderInbox();
  await loadLatest(open);
  if (state.open !== open) return;
  open.loaded = true;
  for (const entry of state.pending.values()) {
    entry.node = null;
    showPending(entry);
  }
  scrollToEnd();
  subscribeOpen();
  markRead();
  $("message-input").focus();
}

function showHeader(open) {
  const other = open.item ? otherOf(open.item) : { name: "Conversation " + open.id };
  $("conversation-title").textContent = other.name;
  $("conversation-job").textContent = open.item ? "job " + open.item.job_id : "";
}

// The newest page of history; `open.missing` says it could not be loaded (offline).
async function loadLatest(open) {
  try {
    const page = await api("/v1/conversations/" + open.id + "/messages?limit=50");
    if (state.open !== open) return;
    open.missing = false;
    open.nextBefore = page.next_before;
    page.messages.forEach((message) => addMessage(message, false));
    $("load-older").hidden = open.nextBefore == null;
  } catch (error) {
    open.missing = true;
    notice("Could not load messages: " + error.message);
  }
}

// Connected again: what could not be loaded when the conversation was opened offline.
async function catchUpOpen() {
  const open = state.open;
  if (!open) return;
  if (!open.item && state.inbox.has(open.id)) {
    open.item = state.inbox.get(open.id);
    showHeader(open);
    renderInbox();
  }
  if (!open.missing) return;
  await loadLatest(open);
  scrollToEnd();
  markRead();
}

async function loadOlder() {
  const open = state.open;
  if (!open || open.nextBefore == null || open.loadingOlder) return;
  open.loadingOlder = true;
  const scroller = $("message-scroll");
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  let page;
  try {
    page = await api("/v1/conversations/" + open.id + "/messages?limit=50&before=" + open.nextBefore);
  } finally {
    open.loadingOlder = false;
  }
  if (state.open !== open) return;
  open.nextBefore = page.next_before;
  page.messages.forEach((message) => addMessage(message, false));
  $("load-older").hidden = open.nextBefore == null;
  scroller.scrollTop = scroller.scrollHeight - fromBottom;
}

function subscribeOpen() {
  const open = state.open;
  if (!open || !open.loaded) return;
  // The client sends it once connected, and again after every reconnection from the last
  // message it delivered.
  state.client.subscribe(open.id, open.lastPosition > 0 ? open.lastPosition : undefined);
}

// Adds (or updates) a confirmed message, keeping the list ordered by id with no duplicates.
function addMessage(message, live) {
  const open = state.open;
  if (!open || message.conversation_id !== open.id) return;
  if (message.idempotency_key) settle(message.idempotency_key);
  open.messages.set(message.id, mergeMessage(open.messages.get(message.id), message));
  showMessage(open.messages.get(message.id));
  open.lastPosition = Math.max(open.lastPosition, message.id);
  decorate();
  if (live) {
    const mine = message.sender_id === state.me.user_id;
    // Someone reading older messages is not pulled away from them.
    if (mine || open.atEnd) scrollToEnd(); else $("new-messages").hidden = false;
    if (!mine) { hideTyping(); markRead(); }
  }
}

// What is shown and what arrives may each be the newer: a page of history fetched before
// a live change must not undo it. A deletion is final; of two edits, the later stands.
function mergeMessage(known, message) {
  const merged = Object.assign({}, known, message);
  if (known && known.deleted) merged.deleted = true;
  else if (known && known.edited_at && !(Date.parse(message.edited_at) >= Date.parse(known.edited_at))) {
    merged.text = known.text;
    merged.edited_at = known.edited_at;
  }
  if (merged.deleted) {
    merged.text = "";
    delete merged.attachment;
  }
  return merged;
}

// A message_changed frame (or our own change, once the server took it). Changes in log
// order follow their message, so one for a message not shown is of an older page, which
// shows it as changed when loaded.
function applyChange(frame) {
  const open = state.open;
  if (!open || frame.conversation_id !== open.id) return;
  open.lastPosition = Math.max(open.lastPosition, frame.position);
  const known = open.messages.get(frame.message_id);
  if (!known) return;
  const change = frame.change;
  let changed;
  if (change.kind === "deleted") {
    changed = Object.assign({}, known, { deleted: true, text: "" });
    delete changed.attachment;
    if (open.editing && open.editing.id === known.id) open.editing = null;
    if (open.deleting === known.id) { open.deleting = null; $("delete-dialog").close(); }
  } else if (change.kind === "edited" && !known.deleted) {
    changed = Object.assign({}, known, { text: change.text, edited_at: change.edited_at });
  } else {
    return;
  }
  open.messages.set(known.id, changed);
  showMessage(changed);
  decorate();
  if (open.atEnd) scrollToEnd(); // an edit may make it taller
}

// Draws `message` in its place. Drawn again, it keeps the keyboard's focus (and an open
// editor with what was typed in it).
function showMessage(message) {
  const list = $("messages");
  const existing = list.querySelector('.message[data-message-id="' + message.id + '"]');
  // Taken before drawing: drawing moves the editor over, and it loses focus as it goes.
  const focused = existing && existing.contains(document.activeElement) ? document.activeElement : null;
  const node = messageNode(message);
  if (existing) {
    existing.replaceWith(node);
    if (focused && !node.contains(document.activeElement)) focusWithin(node, focused);
  } else {
    let before = null;
    for (const child of list.children) {
      // Before any later message, or before the unsent ones at the end (separators are
      // placed again afterwards).
      const unsent = child.dataset.pendingRef !== undefined;
      if (unsent || Number(child.dataset.messageId) > message.id) { before = child; break; }
    }
    list.insertBefore(node, before);
  }
}

// Day separators, the sender's name at the start of each run of their messages, and the
// divider above the first message that was unread when the conversation was opened.
function decorate() {
  const open = state.open;
  const list = $("messages");
  for (const node of list.querySelectorAll(".day, .unread-divider")) node.remove();
  let previous = null;
  let divided = open.readAtOpen == null;
  for (const node of [...list.querySelectorAll(".message[data-message-id]")]) {
    const message = open.messages.get(Number(node.dataset.messageId));
    if (!message) continue;
    const day = new Date(message.sent_at).toDateString();
    if (!previous || new Date(previous.sent_at).toDateString() !== day) {
      const separator = el("li", "day", dayLabel(message.sent_at));
      node.before(separator);
    }
    if (!divided && message.id > open.readAtOpen && message.sender_id !== state.me.user_id) {
      node.before(el("li", "unread-divider", "New messages"));
      divided = true;
    }
    const after = node.previousElementSibling;
    const separated = after && (after.classList.contains("day") || after.classList.contains("unread-divider"));
    const first = !previous || previous.sender_id !== message.sender_id || separated;
    node.classList.toggle("first-of-run", first);
    previous = message;
  }
}

function dayLabel(stamp) {
  const date = new Date(stamp);
  const today = new Date();
  const yesterday = new Date(today.getTime() - 86_400_000);
  if (date.toDateString() === today.toDateString()) return "Today";
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  return date.toLocaleDateString([], { weekday: "long", month: "long", day: "numeric", year: "numeric" });
}

function messageNode(message) {
  const mine = message.sender_id === state.me.user_id;
  const kind = message.message_type === "SYSTEM" ? "system" : mine ? "mine" : "theirs";
  const li = el("li", "message " + kind + (message.deleted ? " deleted" : ""));
  li.dataset.messageId = String(message.id);
  li.dataset.sender = message.sender_id;
  const bubble = el("div", "bubble");
  bubble.title = message.sender_name;
  if (kind === "theirs") bubble.append(el("div", "sender", message.sender_name));
  const editing = state.open && state.open.editing && state.open.editing.id === message.id;
  if (message.deleted) {
    bubble.append(el("div", "deleted-text", "This message was deleted"));
  } else {
    bubble.append(editing ? state.open.editing.form : textWithLinks(message.text));
    const node = message.attachment && attachmentNode(message.attachment);
    if (node) bubble.append(node);
  }
  const meta = el("div", "meta");
  if (message.edited_at && !message.deleted) meta.append(editedMarker(message.edited_at), " ");
  meta.append(timeOf(message.sent_at));
  if (mine && !message.deleted) {
    const seen = message.is_read || message.id <= (state.open ? state.open.otherRead : 0);
    meta.append(el("span", "status" + (seen ? " seen" : ""), seen ? "Seen" : "Sent"));
  }
  bubble.append(meta);
  if (editing) li.classList.add("editing");
  else if (kind === "mine" && !message.deleted) li.append(actionsButton(message));
  li.append(bubble);
  return li;
}

// Where focus goes when a message it was in is drawn again: the same element when it was
// moved over (the editor), else the actions, else (deleted) the bubble itself.
function focusWithin(node, focused) {
  if (node.contains(focused)) { focused.focus(); return; }
  const actions = node.querySelector(".message-actions");
  if (actions) { actions.focus(); return; }
  const bubble = node.querySelector(".bubble");
  bubble.tabIndex = -1;
  bubble.focus();
}

function editedMarker(stamp) {
  const marker = el("span", "edited", "edited");
  const date = new Date(stamp);
  if (!isNaN(date)) marker.title = "Edited " + date.toLocaleString();
  return marker;
}

// Text as text nodes, with http(s) links made clickable (never markup from the text).
function textWithLinks(text) {
  const node = el("div", "message-text");
  node.dir = "auto";
  const pattern = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/gi;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    node.append(document.createTextNode(text.slice(last, match.index)));
    const a = el("a", null, match[0]);
    a.href = match[0];
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    node.append(a);
    last = match.index + match[0].length;
  }
  node.append(document.createTextNode(text.slice(last)));
  return node;
}

// ---------- typing and presence ----------

// The counter appears near the limit; over it, sending is refused here as the server would.
function updateByteCount() {
  const input = $("message-input");
  const bytes = new TextEncoder().encode(input.value).length;
  const counter = $("byte-count");
  counter.hidden = bytes < MAX_TEXT_BYTES - 500;
  counter.textContent = bytes + " / " + MAX_TEXT_BYTES;
  counter.classList.toggle("over", bytes > MAX_TEXT_BYTES);
  $("send-button").disabled = bytes > MAX_TEXT_BYTES;
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight + 2, 160) + "px";
}

function onInput() {
  updateByteCount();
  const open = state.open;
  if (!open || !open.subscribed) return;
  const now = Date.now();
  if (now - open.typingSentAt > TYPING_REPEAT_MS) {
    open.typingSentAt = now;
    state.client.typing(open.id, true);
  }
  clearTimeout(open.typingIdle);
  open.typingIdle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  const open = state.open;
  if (!open || !open.typingSentAt) return;
  clearTimeout(open.typingIdle);
  open.typingSentAt = 0;
  state.client.typing(open.id, false);
}

function onTyping(frame) {
  const open = state.open;
  if (!frame.is_typing) { hideTyping(); return; }
  const item = state.inbox.get(open.id);
  const who = item ? [item.client, item.worker].find((p) => p.id === frame.user_id) : null;
  $("typing").textContent = (who ? who.name : frame.user_id) + " is typing…";
  $("typing").hidden = false;
  clearTimeout(open.typingHide);
  open.typingHide = setTimeout(hideTyping, TYPING_SHOW_MS);
}

function hideTyping() {
  $("typing").hidden = true;
  if (state.open) clearTimeout(state.open.typingHide);
}

// Presence means connected to the chat (on any device); an offline frame's `at` is when
// the other side was last seen.
function setPresence(status, at) {
  const node = $("presence");
  node.dataset.status = status;
  const seen = status === "offline" && at ? new Date(at) : null;
  node.textContent = status === "online" ? "online" : seen && !isNaN(seen) ? "last seen " + lastSeen(seen) : "offline";
  node.title = seen && !isNaN(seen) ? seen.toLocaleString() : "";
  if (state.open) state.open.presence = { status, at, known: new Date() };
}

// Our own connection is down, so the other side's presence is no longer heard: they may
// well be connected. What was last known stays, marked as such, or "status unknown".
function presenceUnknown() {
  const node = $("presence");
  const known = state.open && state.open.presence;
  node.dataset.status = "unknown";
  node.title = "Not updated while you are offline";
  if (!known) { node.textContent = "status unknown"; return; }
  if (known.status === "online") {
    node.textContent = "online as of " + known.known.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return;
  }
  const seen = known.at ? new Date(known.at) : null;
  node.textContent = seen && !isNaN(seen) ? "last seen " + lastSeen(seen) : "status unknown";
}

function lastSeen(date) {
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (date.toDateString() === new Date().toDateString()) return "today at " + time;
  return date.toLocaleDateString([], { month: "short", day: "numeric" }) + " at " + time;
}
