// The web app's event wiring, and its start. Loaded last (see index.html).
"use strict";

// ---------- wiring ----------

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("login-user").value.trim(), $("login-name").value.trim());
});
for (const button of document.querySelectorAll("[data-quick-user]")) {
  button.addEventListener("click", () => signIn(button.dataset.quickUser, button.dataset.quickName));
}
$("sign-out").addEventListener("click", signOut);
$("notifications").addEventListener("change", onNotificationsToggled);
$("conversation-list").addEventListener("click", (event) => {
  const item = event.target.closest("[data-conversation-id]");
  if (item) openConversation(Number(item.dataset.conversationId));
});
$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("message-input");
  if (new TextEncoder().encode(input.value).length > MAX_TEXT_BYTES) return;
  const sending = Boolean(state.open && input.value.trim());
  sendMessage(input.value);
  if (sending) offerNotifications(); // the first send is when notifications are offered
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
window.addEventListener("offline", () => { if (state.client) state.client.reconnect(); });
window.addEventListener("online", () => { if (state.client && !state.holdReconnect) state.client.connect(); });
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
document.addEventListener("pointerdown", onPointerDown);
$("delete-dialog").addEventListener("close", onDeleteDialogClosed);
for (const button of $("delete-dialog").querySelectorAll("button[value]")) {
  button.addEventListener("click", () => $("delete-dialog").close(button.value));
}
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
    if (!hold) { state.client.reconnect(); return; }
    sessionStorage.setItem("chat.debug.hold", "1");
    state.client.close();
  },
  releaseSocket() {
    state.holdReconnect = false;
    sessionStorage.removeItem("chat.debug.hold");
    connect();
  },
  // The open socket stops carrying frames either way without closing, as when a network
  // stalls; the heartbeat (every `everyMs`, answered within `stallMs`) must notice.
  stallSocket(everyMs = 1000, stallMs = 1000) {
    state.client.setHeartbeat(everyMs, stallMs);
    state.client.stallForTesting();
  },
};

registerServiceWorker();
if (state.token) start(); else showLogin();
