// The chat web app: sign in, inbox, one open conversation over the native WebSocket.
// All user data goes into the page through textContent, never innerHTML.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "chat.token";
const TYPING_REPEAT_MS = 3000; // resend "typing" while the user keeps typing
const TYPING_IDLE_MS = 4000; // send "stopped typing" after this long without input
const TYPING_SHOW_MS = 6000; // hide the other side's indicator without a refresh
const MAX_TEXT_BYTES = 4096; // the server's limit on a message's text, in UTF-8 bytes
// A ping this often while connected, and a connection that answers nothing for `stallMs`
// after one is stalled (tests shorten both through chatDebug).
const heartbeat = { everyMs: 15000, stallMs: 8000 };

const state = {
  token: localStorage.getItem(TOKEN_KEY), // shared by the tabs of this browser
  me: null, // {user_id, name}
  inbox: new Map(), // conversation_id -> inbox item (highest version)
  ws: null,
  wsReady: false,
  retries: 0,
  reconnectTimer: null,
  holdReconnect: sessionStorage.getItem("chat.debug.hold") === "1", // debugging aid: stay offline
  heartbeat: null,
  lastHeard: 0, // when the socket last carried a frame
  stalled: null, // debugging aid: a socket that carries nothing either way
  open: null, // the open conversation, see openConversation()
  outbox: new Map(), // ref -> a send not yet acknowledged, see the outbox below
  refs: 0,
};

// ---------- small helpers ----------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function notice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { box.hidden = true; }, 5000);
}

function timeOf(stamp) {
  if (!stamp) return "";
  const date = new Date(stamp);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { month: "short", day: "numeric" });
}

function nextRef() {
  state.refs += 1;
  return "r" + state.refs;
}

async function api(path, options = {}, token = state.token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = "Bearer " + token;
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((body && (body.detail || body.title)) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function otherOf(item) {
  if (!state.me) return item.worker;
  return item.client.id === state.me.user_id ? item.worker : item.client;
}

// ---------- sign in / out ----------

async function mintToken(sub, name, service) {
  const body = { sub, service };
  if (name) body.name = name;
  return (await api("/dev/token", { method: "POST", body }, null)).token;
}

async function signIn(sub, name) {
  $("login-error").textContent = "";
  try {
    state.token = await mintToken(sub, name, false);
    localStorage.setItem(TOKEN_KEY, state.token);
    await start();
  } catch (error) {
    $("login-error").textContent = "Sign in failed: " + error.message;
  }
}

function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  location.href = location.pathname; // a full load, without the open conversation's hash
}

function showLogin() {
  $("login-view").hidden = false;
  $("chat-view").hidden = true;
  $("account").hidden = true;
  $("login-user").focus();
}

async function start() {
  try {
    state.me = await api("/v1/me");
  } catch (error) {
    if (error.status === 401) { localStorage.removeItem(TOKEN_KEY); showLogin(); return; }
    notice("Cannot reach the server: " + error.message);
    setTimeout(start, 2000);
    return;
  }
  $("login-view").hidden = true;
  $("chat-view").hidden = false;
  $("account").hidden = false;
  $("me-name").textContent = state.me.name + " (" + state.me.user_id + ")";
  loadOutbox();
  $("new-client").value = state.me.user_id;
  await loadInbox();
  connect();
  const linked = /^#c(\d+)$/.exec(location.hash); // the conversation open before a reload
  if (linked) openConversation(Number(linked[1]));
}

// ---------- inbox ----------

async function loadInbox() {
  try {
    const page = await api("/v1/conversations?limit=200");
    page.items.forEach(upsertInbox);
  } catch (error) {
    notice("Could not load conversations: " + error.message);
  }
  renderInbox();
}

function upsertInbox(item) {
  const known = state.inbox.get(item.conversation_id);
  if (!known || item.version >= known.version) state.inbox.set(item.conversation_id, item);
}

function renderTitle() {
  let unread = 0;
  for (const item of state.inbox.values()) unread += item.unread_count || 0;
  document.title = (unread ? "(" + unread + ") " : "") + "chat";
}

function renderInbox() {
  renderTitle();
  const list = $("conversation-list");
  const items = [...state.inbox.values()].sort((a, b) =>
    (b.last_activity_at || "").localeCompare(a.last_activity_at || "") ||
    b.conversation_id - a.conversation_id);
  list.replaceChildren(...items.map(inboxEntry));
  $("inbox-empty").hidden = items.length > 0;
}

function inboxEntry(item) {
  const li = el("li", "conversation-item");
  li.dataset.conversationId = String(item.conversation_id);
  const button = el("button", "conversation-button");
  button.type = "button";
  if (state.open && state.open.id === item.conversation_id) {
    li.classList.add("active");
    button.setAttribute("aria-current", "true");
  }
  const other = otherOf(item);
  const top = el("span", "row");
  top.append(el("span", "name", other.name), el("span", "time", timeOf(item.last_activity_at)));
  const bottom = el("span", "row");
  let preview = item.last_message_text == null ? "No messages yet" : item.last_message_text;
  if (item.last_message_text != null && item.last_message_sender_id === state.me.user_id) {
    preview = "You: " + preview;
  }
  const previewNode = el("span", "preview", preview);
  previewNode.dir = "auto";
  bottom.append(previewNode);
  if (item.unread_count > 0) {
    const badge = el("span", "unread-badge", String(item.unread_count));
    badge.setAttribute("aria-label", item.unread_count + " unread");
    bottom.append(badge);
    li.classList.add("unread");
  }
  button.append(top, el("span", "job", "job " + item.job_id), bottom);
  li.append(button);
  return li;
}

// ---------- the open conversation ----------

async function openConversation(id) {
  if (state.open && state.open.id === id) return;
  if (state.open && state.open.subscribed) wsSend({ type: "unsubscribe", conversation_id: state.open.id });
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
  };
  state.open = open;
  // From the inbox, a new history entry, so that a phone's back button returns to it.
  if (/^#c\d+$/.test(location.hash)) history.replaceState({ conversation: id }, "", "#c" + id);
  else history.pushState({ conversation: id, fromInbox: true }, "", "#c" + id);
  $("chat-view").dataset.pane = "conversation";
  $("no-conversation").hidden = true;
  $("conversation").hidden = false;
  $("messages").replaceChildren();
  $("typing").hidden = true;
  setPresence("offline");
  const other = item ? otherOf(item) : { name: "Conversation " + id };
  $("conversation-title").textContent = other.name;
  $("conversation-job").textContent = item ? "job " + item.job_id : "";
  renderInbox();
  try {
    const page = await api("/v1/conversations/" + id + "/messages?limit=50");
    if (state.open !== open) return;
    open.nextBefore = page.next_before;
    page.messages.forEach((message) => addMessage(message, false));
  } catch (error) {
    notice("Could not load messages: " + error.message);
  }
  if (state.open !== open) return;
  open.loaded = true;
  for (const entry of state.outbox.values()) {
    entry.node = null;
    showPending(entry);
  }
  $("load-older").hidden = open.nextBefore == null;
  scrollToEnd();
  subscribeOpen();
  markRead();
  $("message-input").focus();
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
  if (!open || !open.loaded || !state.wsReady) return;
  const frame = { type: "subscribe", conversation_id: open.id };
  if (open.lastPosition > 0) frame.since = open.lastPosition;
  wsSend(frame);
}

// Adds (or updates) a confirmed message, keeping the list ordered by id with no duplicates.
function addMessage(message, live) {
  const open = state.open;
  if (!open || message.conversation_id !== open.id) return;
  for (const entry of [...state.outbox.values()]) {
    if (message.idempotency_key && entry.key === message.idempotency_key) settle(entry.ref);
  }
  const known = open.messages.get(message.id);
  open.messages.set(message.id, Object.assign({}, known, message));
  const node = messageNode(open.messages.get(message.id));
  const list = $("messages");
  const existing = list.querySelector('.message[data-message-id="' + message.id + '"]');
  if (existing) {
    existing.replaceWith(node);
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
  open.lastPosition = Math.max(open.lastPosition, message.id);
  decorate();
  if (live) {
    const mine = message.sender_id === state.me.user_id;
    // Someone reading older messages is not pulled away from them.
    if (mine || open.atEnd) scrollToEnd(); else $("new-messages").hidden = false;
    if (!mine) { hideTyping(); markRead(); }
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
  const li = el("li", "message " + kind);
  li.dataset.messageId = String(message.id);
  li.dataset.sender = message.sender_id;
  const bubble = el("div", "bubble");
  bubble.title = message.sender_name;
  if (kind === "theirs") bubble.append(el("div", "sender", message.sender_name));
  bubble.append(textWithLinks(message.text));
  if (message.attachment) {
    const node = attachmentNode(message.attachment);
    if (node) bubble.append(node);
  }
  const meta = el("div", "meta", timeOf(message.sent_at));
  if (mine) {
    const seen = message.is_read || message.id <= (state.open ? state.open.otherRead : 0);
    meta.append(el("span", "status" + (seen ? " seen" : ""), seen ? "Seen" : "Sent"));
  }
  bubble.append(meta);
  li.append(bubble);
  return li;
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

// ---------- attachments ----------

const blobs = new Map(); // path of an upload here -> object URL of its bytes

// Uploads are served to participants only, so they are fetched with the token and shown
// from object URLs; links elsewhere open in a new tab without a referrer.
function fetchUpload(path) {
  if (!blobs.has(path)) {
    blobs.set(path, fetch(path, { headers: { authorization: "Bearer " + state.token } })
      .then((response) => {
        if (!response.ok) throw new Error("download failed (" + response.status + ")");
        return response.blob();
      })
      .then((blob) => URL.createObjectURL(blob))
      .catch((error) => { blobs.delete(path); throw error; }));
  }
  return blobs.get(path);
}

function sizeText(bytes) {
  if (bytes == null) return "";
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(0) + " KB";
  return (bytes / 1024 / 1024).toFixed(1) + " MB";
}

function attachmentNode(link) {
  if (/^https?:\/\//i.test(link.url)) {
    const a = el("a", "attachment file-link", link.name);
    a.href = link.url;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }
  if (!link.upload_id || !link.url.startsWith("/v1/conversations/")) return null;
  const open = () => fetchUpload(link.url).then((url) => {
    const a = document.createElement("a");
    a.href = url;
    a.download = link.name;
    a.click();
  }).catch((error) => notice(error.message));
  if (link.thumbnail_url) {
    const button = el("button", "attachment");
    button.type = "button";
    button.title = "Download " + link.name;
    const img = el("img", "attachment-image");
    img.alt = link.name;
    if (link.width && link.height) {
      const scale = Math.min(1, 320 / Math.max(link.width, link.height));
      img.width = Math.round(link.width * scale);
      img.height = Math.round(link.height * scale);
    }
    fetchUpload(link.thumbnail_url).then((url) => { img.src = url; }).catch(() => { img.alt = link.name + " (unavailable)"; });
    button.append(img);
    button.addEventListener("click", open);
    return button;
  }
  const button = el("button", "attachment file-link", link.name + " · " + sizeText(link.size));
  button.type = "button";
  button.addEventListener("click", open);
  return button;
}

// Uploads `file` with visible progress, then sends it as a message through the outbox.
// The bytes live in this page only: an upload cut short by a reload is lost (and said so
// while it runs); once uploaded, the send is kept like any other.
function uploadFile(file) {
  const open = state.open;
  if (!open) return;
  const entry = {
    ref: nextRef(), key: crypto.randomUUID(), conversation_id: open.id, text: "",
    attachment: null, uploading: file.name,
  };
  state.outbox.set(entry.ref, entry);
  showPending(entry);
  const progress = el("progress");
  progress.max = 100;
  progress.value = 0;
  progress.setAttribute("aria-label", "Uploading " + file.name);
  entry.node.querySelector(".meta").before(progress);
  const meta = entry.node.querySelector(".meta");
  meta.textContent = "Uploading…";
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/v1/conversations/" + open.id + "/attachments?name=" + encodeURIComponent(file.name));
  xhr.setRequestHeader("authorization", "Bearer " + state.token);
  xhr.upload.addEventListener("progress", (event) => {
    if (!event.lengthComputable) return;
    progress.value = Math.round((100 * event.loaded) / event.total);
    meta.textContent = "Uploading " + progress.value + "%";
  });
  const li = entry.node;
  const failed = (why) => {
    state.outbox.delete(entry.ref);
    li.classList.remove("pending");
    li.classList.add("failed");
    progress.remove();
    meta.textContent = "Not sent: " + why;
  };
  xhr.addEventListener("load", () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status !== 201 || !body) {
      failed((body && body.detail) || "upload failed (" + xhr.status + ")");
      return;
    }
    progress.remove();
    meta.textContent = "Sending…";
    entry.attachment = body;
    delete entry.uploading;
    saveOutbox();
    transmit(entry);
  });
  xhr.addEventListener("error", () => failed("the upload did not reach the server"));
  xhr.send(file);
}

function applyReadReceipt(upTo) {
  const open = state.open;
  open.otherRead = Math.max(open.otherRead, upTo);
  for (const node of $("messages").querySelectorAll(".message.mine[data-message-id]")) {
    if (Number(node.dataset.messageId) > upTo) continue;
    const status = node.querySelector(".status");
    if (status && !status.classList.contains("seen")) {
      status.classList.add("seen");
      status.textContent = "Seen";
    }
  }
}

// On a phone the open conversation may sit behind the inbox; nothing is read there.
function conversationVisible() {
  return $("chat-view").dataset.pane === "conversation" || !window.matchMedia("(max-width: 720px)").matches;
}

function showInbox() {
  $("chat-view").dataset.pane = "inbox";
  if (history.state && history.state.fromInbox) history.back();
  else history.replaceState(null, "", location.pathname);
}

function markRead() {
  const open = state.open;
  if (!open || !open.loaded || document.hidden || !conversationVisible()) return;
  const item = state.inbox.get(open.id);
  let upTo = 0;
  for (const message of open.messages.values()) {
    if (message.sender_id !== state.me.user_id) upTo = Math.max(upTo, message.id);
  }
  const readMark = Math.max(open.readSent, item ? item.last_read_id : 0);
  if (upTo <= readMark) return;
  open.readSent = upTo;
  if (!wsSend({ type: "read", ref: nextRef(), conversation_id: open.id, up_to: upTo })) {
    api("/v1/conversations/" + open.id + "/read", { method: "POST", body: { up_to: upTo } })
      .catch(() => { open.readSent = 0; });
  }
}

function scrollToEnd() {
  const scroller = $("message-scroll");
  scroller.scrollTop = scroller.scrollHeight;
  $("new-messages").hidden = true;
  if (state.open) state.open.atEnd = true;
}

// Near the end counts as at the end; near the top loads older messages by itself.
function onScroll() {
  const open = state.open;
  if (!open) return;
  const scroller = $("message-scroll");
  open.atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  if (open.atEnd) $("new-messages").hidden = true;
  if (scroller.scrollTop < 120 && open.loaded) loadOlder().catch((error) => notice(error.message));
}

// ---------- sending ----------

function sendMessage(text) {
  const open = state.open;
  if (!open || !text.trim()) return;
  const entry = { ref: nextRef(), key: crypto.randomUUID(), conversation_id: open.id, text, attachment: null };
  state.outbox.set(entry.ref, entry);
  saveOutbox();
  showPending(entry);
  transmit(entry);
  stopTyping();
}

// ---------- the outbox ----------
// Every send waits here, with its idempotency key, until the server acknowledges it, and
// is kept in localStorage so that a reload or a closed tab loses nothing: on every
// connection each is sent again, and the key makes a repeat the same message.

function outboxKey() {
  return "chat.outbox." + state.me.user_id;
}

function saveOutbox() {
  const kept = [...state.outbox.values()]
    .filter((entry) => !entry.uploading)
    .map(({ key, conversation_id, text, attachment, failed }) => ({ key, conversation_id, text, attachment, failed }));
  try {
    localStorage.setItem(outboxKey(), JSON.stringify(kept));
  } catch (_) {
    notice("This browser keeps no storage: unsent messages are lost if the page closes.");
  }
}

function loadOutbox() {
  let saved = [];
  try { saved = JSON.parse(localStorage.getItem(outboxKey()) || "[]"); } catch (_) { /* none */ }
  for (const entry of Array.isArray(saved) ? saved : []) {
    if (!entry || typeof entry.key !== "string" || typeof entry.conversation_id !== "number") continue;
    const ref = nextRef();
    state.outbox.set(ref, Object.assign({ text: "", attachment: null }, entry, { ref }));
  }
}

// Removes a send from the outbox (acknowledged, arrived, or discarded).
function settle(ref) {
  const entry = state.outbox.get(ref);
  if (!entry) return null;
  state.outbox.delete(ref);
  saveOutbox();
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
  li.dataset.pendingRef = entry.ref;
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
      saveOutbox();
      entry.node.remove();
      showPending(entry);
      transmit(entry);
    });
    const discard = el("button", "link", "Delete");
    discard.type = "button";
    discard.addEventListener("click", () => settle(entry.ref));
    bubble.append(retry, discard);
  }
  li.append(bubble);
  if (entry.node) entry.node.replaceWith(li); else $("messages").append(li);
  entry.node = li;
  scrollToEnd();
}

function flushOutbox() {
  for (const entry of state.outbox.values()) transmit(entry);
}

function transmit(entry) {
  if (entry.uploading || entry.failed) return; // sent once its upload is done, or retried
  const frame = {
    type: "send", ref: entry.ref, conversation_id: entry.conversation_id,
    text: entry.text, idempotency_key: entry.key,
  };
  if (entry.attachment) {
    frame.attachment = entry.attachment;
    frame.message_type = messageTypeOf(entry);
  }
  wsSend(frame);
}

function onAck(frame) {
  if (frame.message_id == null) return;
  const entry = settle(frame.ref);
  const open = state.open;
  if (!entry || !open || open.id !== entry.conversation_id) return;
  if (!open.messages.has(frame.message_id)) {
    // The message frame has not arrived yet; show it as confirmed meanwhile.
    addMessage({
      id: frame.message_id, conversation_id: open.id, sender_id: state.me.user_id,
      sender_name: state.me.name, text: entry.text, message_type: messageTypeOf(entry),
      attachment: entry.attachment || undefined,
      sent_at: new Date().toISOString(), is_read: false, idempotency_key: entry.key,
    }, true);
  }
}

function onError(frame) {
  const entry = frame.ref ? state.outbox.get(frame.ref) : null;
  if (entry) {
    entry.failed = frame.detail;
    saveOutbox();
    showPending(entry);
    return;
  }
  notice(frame.code + ": " + frame.detail);
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
    wsSend({ type: "typing", conversation_id: open.id, is_typing: true });
  }
  clearTimeout(open.typingIdle);
  open.typingIdle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  const open = state.open;
  if (!open || !open.typingSentAt) return;
  clearTimeout(open.typingIdle);
  open.typingSentAt = 0;
  wsSend({ type: "typing", conversation_id: open.id, is_typing: false });
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

function setPresence(status) {
  $("presence").dataset.status = status;
  $("presence").textContent = status;
}

// ---------- the WebSocket ----------

function setConnection(text, kind) {
  $("connection").textContent = text;
  $("connection").dataset.state = kind;
}

function wsSend(frame) {
  if (!state.ws || !state.wsReady) return false;
  if (state.ws === state.stalled) return true; // lost on the way, as on a stalled network
  state.ws.send(JSON.stringify(frame));
  return true;
}

function connect() {
  clearTimeout(state.reconnectTimer);
  if (state.holdReconnect) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(scheme + "//" + location.host + "/v1/ws?token=" + encodeURIComponent(state.token));
  state.ws = ws;
  setConnection(state.retries ? "reconnecting…" : "connecting…", "connecting");
  ws.onmessage = (event) => {
    if (state.ws !== ws || state.stalled === ws) return;
    state.lastHeard = Date.now();
    onFrame(JSON.parse(event.data));
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    clearInterval(state.heartbeat);
    state.ws = null;
    state.wsReady = false;
    if (state.open) { state.open.subscribed = false; setPresence("offline"); hideTyping(); }
    if (event.code === 4401) { signOut(); return; }
    setConnection("offline", "offline");
    const delay = Math.min(10000, 500 * 2 ** state.retries) * (0.75 + Math.random() / 2);
    state.retries += 1;
    state.reconnectTimer = setTimeout(connect, delay);
  };
}

// Browsers cannot see WebSocket pings, and a stalled network (a dead Wi-Fi, a phone
// between cells) can leave a socket open that carries nothing for minutes. A ping every
// heartbeat.everyMs must be answered (by a pong or anything else) within stallMs; else the
// socket is given up and the usual reconnect and resume take over.
function startHeartbeat() {
  clearInterval(state.heartbeat);
  state.heartbeat = setInterval(() => {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const sent = Date.now();
    wsSend({ type: "ping" });
    setTimeout(() => {
      if (state.ws === ws && state.lastHeard < sent) dropStalled(ws);
    }, heartbeat.stallMs);
  }, heartbeat.everyMs);
}

function dropStalled(ws) {
  clearInterval(state.heartbeat);
  setConnection("offline", "offline");
  // onclose may come only when the network answers; reconnect now instead.
  ws.onclose({ code: 1006 });
  ws.close();
}

function onFrame(frame) {
  const open = state.open;
  const here = open && frame.conversation_id === open.id;
  switch (frame.type) {
    case "ready":
      startHeartbeat();
      state.wsReady = true;
      state.retries = 0;
      setConnection("online", "online");
      loadInbox(); // catch up on inbox changes missed while disconnected
      flushOutbox(); // the same keys: a send that already landed is not doubled
      subscribeOpen();
      break;
    case "subscribed":
      if (!here) { wsSend({ type: "unsubscribe", conversation_id: frame.conversation_id }); break; }
      open.subscribed = true;
      markRead();
      break;
    case "unsubscribed":
      break;
    case "message":
      if (here) addMessage(frame.message, true);
      break;
    case "read":
      if (here) open.lastPosition = Math.max(open.lastPosition, frame.position);
      if (here && frame.reader_id !== state.me.user_id) applyReadReceipt(frame.up_to);
      break;
    case "typing":
      if (here && frame.user_id !== state.me.user_id) onTyping(frame);
      break;
    case "presence":
      if (here && frame.user_id !== state.me.user_id) setPresence(frame.status);
      break;
    case "inbox":
      upsertInbox(frame.item);
      renderInbox();
      break;
    case "ack":
      onAck(frame);
      break;
    case "error":
      onError(frame);
      break;
  }
}

// ---------- new conversation (dev: signs in as the service role) ----------

// The request body; the signed-in user's display name goes along when they take part.
function participants(client, worker) {
  const body = { client_id: client, worker_id: worker };
  if (client === state.me.user_id) body.client_name = state.me.name;
  if (worker === state.me.user_id) body.worker_name = state.me.name;
  return body;
}

async function newConversation() {
  $("new-conversation-error").textContent = "";
  const job = $("new-job").value.trim();
  try {
    const service = await mintToken("jobs", "Jobs", true);
    const record = await api("/v1/jobs/" + encodeURIComponent(job) + "/conversation", {
      method: "PUT",
      body: participants($("new-client").value.trim(), $("new-worker").value.trim()),
    }, service);
    $("new-conversation-form").closest("details").open = false;
    await loadInbox();
    $("new-job").value = "";
    openConversation(record.conversation_id);
  } catch (error) {
    $("new-conversation-error").textContent = error.message;
  }
}

// ---------- wiring ----------

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("login-user").value.trim(), $("login-name").value.trim());
});
for (const button of document.querySelectorAll("[data-quick-user]")) {
  button.addEventListener("click", () => signIn(button.dataset.quickUser, button.dataset.quickName));
}
$("sign-out").addEventListener("click", signOut);
$("conversation-list").addEventListener("click", (event) => {
  const item = event.target.closest("[data-conversation-id]");
  if (item) openConversation(Number(item.dataset.conversationId));
});
$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("message-input");
  if (new TextEncoder().encode(input.value).length > MAX_TEXT_BYTES) return;
  sendMessage(input.value);
  input.value = "";
  updateByteCount();
});
$("message-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
// The browser knows before the socket does when the network goes.
window.addEventListener("offline", () => { if (state.ws) dropStalled(state.ws); });
window.addEventListener("online", () => { if (!state.ws && !state.holdReconnect) connect(); });
$("message-input").addEventListener("input", onInput);
$("attach-button").addEventListener("click", () => $("file-input").click());
$("back").addEventListener("click", showInbox);
// One session per browser: signing in or out in another tab does the same here.
window.addEventListener("storage", (event) => {
  if (event.key !== TOKEN_KEY || event.newValue === state.token) return;
  location.href = location.pathname;
});
$("message-scroll").addEventListener("scroll", onScroll, { passive: true });
$("new-messages").addEventListener("click", scrollToEnd);
window.addEventListener("popstate", () => {
  const linked = /^#c(\d+)$/.exec(location.hash);
  if (!linked) { $("chat-view").dataset.pane = "inbox"; return; }
  $("chat-view").dataset.pane = "conversation";
  openConversation(Number(linked[1]));
  markRead();
});
window.matchMedia("(max-width: 720px)").addEventListener("change", markRead);
$("file-input").addEventListener("change", () => {
  for (const file of $("file-input").files) uploadFile(file);
  $("file-input").value = "";
});
$("message-input").addEventListener("paste", (event) => {
  const files = [...(event.clipboardData ? event.clipboardData.files : [])];
  if (!files.length) return;
  event.preventDefault();
  files.forEach(uploadFile);
});
$("conversation").addEventListener("dragover", (event) => {
  if (!event.dataTransfer || ![...event.dataTransfer.types].includes("Files")) return;
  event.preventDefault();
  $("conversation").classList.add("dropping");
});
$("conversation").addEventListener("dragleave", () => $("conversation").classList.remove("dropping"));
$("conversation").addEventListener("drop", (event) => {
  event.preventDefault();
  $("conversation").classList.remove("dropping");
  [...event.dataTransfer.files].forEach(uploadFile);
});
$("load-older").addEventListener("click", () => loadOlder().catch((e) => notice(e.message)));
$("new-conversation-form").addEventListener("submit", (event) => {
  event.preventDefault();
  newConversation();
});
document.addEventListener("visibilitychange", markRead);

// A hook for tests and debugging: drop the socket (optionally keeping it closed).
window.chatDebug = {
  closeSocket(hold = false) {
    state.holdReconnect = hold;
    if (hold) sessionStorage.setItem("chat.debug.hold", "1");
    if (state.ws) state.ws.close();
  },
  releaseSocket() {
    state.holdReconnect = false;
    sessionStorage.removeItem("chat.debug.hold");
    if (!state.ws) connect();
  },
  // The open socket stops carrying frames either way without closing, as when a network
  // stalls; the heartbeat (every `everyMs`, answered within `stallMs`) must notice.
  stallSocket(everyMs = 1000, stallMs = 1000) {
    Object.assign(heartbeat, { everyMs, stallMs });
    state.stalled = state.ws;
    startHeartbeat();
  },
};

if (state.token) start(); else showLogin();
