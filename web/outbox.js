// Sending the user's messages: every message waits in the client's outbox (IndexedDB, so a
// reload or a closed tab loses nothing) until acknowledged; each is sent again on every
// connection, and its idempotency key makes a repeat the same message. The page shows what
// waits, keyed alike. Part of the web app (see app.js); editing and deleting what was sent
// is message-actions.js.
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
