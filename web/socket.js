// The native WebSocket: connecting, the heartbeat, reconnecting, and the frames that
// arrive. Part of the web app (see app.js).
"use strict";

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
      if (here && frame.user_id !== state.me.user_id) setPresence(frame.status, frame.at);
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
