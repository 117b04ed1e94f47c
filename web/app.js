// The chat web app: sign in, inbox, one open conversation over the native WebSocket,
// through the typed client of web/client (client-global.js hands it over). All user data
// goes into the page through textContent, never innerHTML. Deferred classic scripts sharing
// one scope, run in order by index.html: this file (state, helpers, sign-in, inbox),
// conversation.js, attachments.js, outbox.js, push-store.js and push.js (notifications and
// the service worker), socket.js, then main.js (wiring).
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "chat.token";
const TYPING_REPEAT_MS = 3000; // resend "typing" while the user keeps typing
const TYPING_IDLE_MS = 4000; // send "stopped typing" after this long without input
const TYPING_SHOW_MS = 6000; // hide the other side's indicator without a refresh
const MAX_TEXT_BYTES = 4096; // the server's limit on a message's text, in UTF-8 bytes
const EDIT_WINDOW_MS = 15 * 60_000; // the server refuses edits of older messages (403)
// A ping this often while connected, and a connection that answers nothing for `stallMs`
// after one is stalled (tests shorten both through chatDebug).
const heartbeat = { everyMs: 15000, stallMs: 8000 };

const state = {
  token: localStorage.getItem(TOKEN_KEY), // shared by the tabs of this browser
  me: null, // {user_id, name}
  inbox: new Map(), // conversation_id -> inbox item (highest version)
  client: null, // the ChatClient, made once signed in (socket.js)
  everOnline: false,
  connected: false, // the socket is open and ready
  announced: undefined, // "online" or "offline": what the live region last said (socket.js)
  holdReconnect: sessionStorage.getItem("chat.debug.hold") === "1", // debugging aid: stay offline
  open: null, // the open conversation, see openConversation()
  menu: null, // {menu, button}: the open actions menu of one of the user's messages (outbox.js)
  pending: new Map(), // idempotency key -> a send not yet acknowledged, as shown (outbox.js)
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

// Notifications stop too: whoever uses this browser next must not see this user's. Telling
// the server may fail (the token may be why we sign out), so it gets a moment, not a veto.
async function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(NOTIFICATIONS_KEY);
  const moment = new Promise((resolve) => setTimeout(resolve, 2000));
  await Promise.race([forgetPush().catch(() => { /* best effort */ }), moment]);
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
    // Offline (the page came from the service worker's cache): the token says who this is,
    // enough to show the app and its outbox until the connection is back.
    state.me = error.status === undefined ? meOfToken(state.token) : null;
    if (!state.me) {
      notice("Cannot reach the server: " + error.message);
      setTimeout(start, 2000);
      return;
    }
  }
  $("login-view").hidden = true;
  $("chat-view").hidden = false;
  $("account").hidden = false;
  $("me-name").textContent = state.me.name + " (" + state.me.user_id + ")";
  $("new-client").value = state.me.user_id;
  await loadInbox();
  await connect();
  loadNotifications();
  const linked = /^#c(\d+)$/.exec(location.hash); // the conversation open before a reload
  if (linked) openConversation(Number(linked[1]));
}

// What /v1/me would answer, from the token's claims (unverified: only to show the page).
function meOfToken(token) {
  try {
    const bytes = atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(bytes, (c) => c.charCodeAt(0))));
    if (typeof claims.sub !== "string") return null;
    return { user_id: claims.sub, name: typeof claims.name === "string" ? claims.name : claims.sub };
  } catch {
    return null;
  }
}

// ---------- inbox ----------

async function loadInbox() {
  try {
    const page = await api("/v1/conversations?limit=200");
    page.items.forEach(upsertInbox);
    $("inbox-empty").textContent = "No conversations yet.";
  } catch (error) {
    notice("Could not load conversations: " + error.message);
    $("inbox-empty").textContent = "Conversations show here once the connection is back.";
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
