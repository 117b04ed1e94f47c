// The connection: one ChatClient (web/client) on the native WebSocket. It reconnects with
// backoff and jitter, notices a stalled network by its heartbeat, resumes the open
// conversation without gaps, and sends from its outbox in IndexedDB; this file turns its
// events into the page. Part of the web app (see app.js).
"use strict";

function setConnection(text, kind) {
  $("connection").textContent = text;
  $("connection").dataset.state = kind;
  announceConnection(kind);
}

// Said to screen readers once per change between connected and not (the client retries
// every few seconds, and each try's "connecting" and "offline" are not news); nothing is
// said while the first connection is made.
function announceConnection(kind) {
  const said = state.announced;
  if (kind === "online") {
    if (said === "offline") $("connection-announcer").textContent = "Connected again.";
    state.announced = "online";
    return;
  }
  if (said === "offline" || (kind === "connecting" && said === undefined)) return;
  state.announced = "offline";
  $("connection-announcer").textContent = said === "online"
    ? "Connection lost. Reconnecting; messages you write are sent once it is back."
    : "Offline. Messages you write are sent once the connection is back.";
}

// Makes the client (once per page) and, unless a test holds the page offline, connects.
async function connect() {
  if (!state.client) {
    const client = new ChatClient({
      baseUrl: location.origin,
      token: () => state.token,
      outbox: indexedDbOutbox("chat.outbox." + state.me.user_id),
      heartbeat,
    });
    state.client = client;
    client.on("state", onConnection);
    client.on("closed", (code) => { if (code === 4401) { client.close(); signOut(); } });
    client.on("frame", onFrame);
    client.on("change", applyChange); // message_changed frames, each once
    client.on("sent", onSent);
    client.on("failed", onFailed);
    await client.loaded;
    loadOutbox();
  }
  if (state.holdReconnect) { setConnection("offline", "offline"); return; }
  await state.client.connect();
}

function onConnection(kind) {
  state.connected = kind === "online";
  if (kind === "online") {
    state.everOnline = true;
    setConnection("online", "online");
    loadInbox().then(catchUpOpen); // what changed, or could not be loaded, while disconnected
    return;
  }
  if (kind === "connecting") {
    setConnection(state.everOnline ? "reconnecting…" : "connecting…", "connecting");
    return;
  }
  setConnection("offline", "offline");
  if (state.open) { state.open.subscribed = false; presenceUnknown(); hideTyping(); }
}

function onFrame(frame) {
  const open = state.open;
  const here = open && frame.conversation_id === open.id;
  switch (frame.type) {
    case "subscribed":
      if (here) { open.subscribed = true; markRead(); }
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
      if (here && frame.user_id !== state.me.user_id) setPresence(frame.status, frame.at);
      break;
    case "inbox":
      upsertInbox(frame.item);
      renderInbox();
      break;
    case "error":
      // A refused send is the outbox's (see onFailed); anything else is news.
      if (!frame.ref || !state.pending.has(frame.ref)) notice(frame.code + ": " + frame.detail);
      break;
  }
}
