// Files in messages: shown from object URLs fetched with the token, and uploaded with
// progress before their message is sent. Part of the web app (see app.js).
"use strict";

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
    key: crypto.randomUUID(), conversation_id: open.id, text: "", attachment: null, uploading: file.name,
  };
  state.pending.set(entry.key, entry);
  showPending(entry);
  const progress = el("progress");
  progress.max = 100;
  progress.value = 0;
  progress.setAttribute("aria-label", "Uploading " + file.name);
  const meta = entry.node.querySelector(".meta");
  meta.before(progress);
  meta.textContent = "Uploading…";
  const li = entry.node;
  const onProgress = (sent, total) => {
    if (!total) return;
    progress.value = Math.round((100 * sent) / total);
    meta.textContent = "Uploading " + progress.value + "%";
  };
  state.client.upload(open.id, file, file.name, onProgress).then((attachment) => {
    progress.remove();
    meta.textContent = "Sending…";
    entry.attachment = attachment;
    delete entry.uploading;
    state.client.send(open.id, "", { attachment, key: entry.key }).catch(() => { /* onFailed shows it */ });
  }, (error) => {
    state.pending.delete(entry.key);
    li.classList.remove("pending");
    li.classList.add("failed");
    progress.remove();
    // "415: …": the status is for the console, the detail for the reader.
    meta.textContent = "Not sent: " + error.message.replace(/^\d+: /, "");
  });
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
  if (!state.client || !state.client.read(open.id, upTo)) {
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
