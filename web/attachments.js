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
