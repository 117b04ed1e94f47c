// Sending: every message waits in the outbox, kept across reloads, until acknowledged.
// Part of the web app (see app.js).
"use strict";

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
