// The web app's service worker: the app shell from a cache when the network is gone, push
// notifications of new messages, and the push subscription kept alive. chat/src/web.rs
// serves this file after two lines it writes itself: `SHELL`, the paths of the app's
// assets, and `SHELL_VERSION`, a digest of their contents (a release changes this file, so
// browsers install the new worker, which caches the new shell).
"use strict";

importScripts("/push-store.js");

const CACHE = "chat-shell-" + SHELL_VERSION;
// A network slower than this on a shell request is answered from the cache (and the cache
// updated when the network does answer): a captive portal or a dying link should not hold
// the app back.
const NETWORK_WAIT_MS = 4000;

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL.map((path) => new Request(path, { cache: "no-cache" })));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("chat-shell-") && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

// Only the shell: the API (/v1/), tokens and attachments always go to the network, never
// into a cache, so nothing a user may no longer see is kept and nothing stale is shown.
self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== location.origin) return;
  const path = url.pathname;
  // The page may be opened with a query (a link's tracking, say); its assets never are.
  if (!SHELL.includes(path) || (url.search && path !== "/")) return;
  event.respondWith(networkFirst(event, request, path));
});

// The network's answer when it comes in time (a release is picked up at once), else the
// cached one; the cache keeps whatever the network last answered.
async function networkFirst(event, request, path) {
  const cache = await caches.open(CACHE);
  const network = fetch(request).then((response) => {
    if (response.ok) event.waitUntil(cache.put(path, response.clone()));
    return response;
  });
  network.catch(() => { /* offline: answered from the cache below */ });
  const late = new Promise((resolve) => setTimeout(resolve, NETWORK_WAIT_MS, null));
  const answer = await Promise.race([network, late]).catch(() => null);
  if (answer) return answer;
  const cached = await cache.match(path, { ignoreVary: true });
  return cached || network;
}

// ---------- notifications ----------

// The payload: {id, type: "message", conversation_id, message_id, sender_name, text, count,
// unread_count}; `id` is the same for every delivery of one notification.
self.addEventListener("push", (event) => {
  event.waitUntil(onPush(event).catch((error) => console.warn("push not shown:", error)));
});

async function onPush(event) {
  let payload;
  try {
    payload = event.data ? event.data.json() : null;
  } catch {
    payload = null;
  }
  if (!payload || payload.type !== "message" || typeof payload.id !== "string") return;
  if (!(await pushStore.firstTime(payload.id))) return; // a duplicate delivery
  if (self.navigator.setAppBadge && Number.isInteger(payload.unread_count)) {
    self.navigator.setAppBadge(payload.unread_count).catch(() => { /* not an installed app */ });
  }
  const count = Number.isInteger(payload.count) ? payload.count : 1;
  const text = String(payload.text || "");
  await self.registration.showNotification(String(payload.sender_name || "New message"), {
    body: count > 1 ? count + " new messages\n" + text : text,
    // One notification per conversation: a newer one replaces it, and alerts again.
    tag: "conversation-" + payload.conversation_id,
    renotify: true,
    data: { id: payload.id, conversation_id: payload.conversation_id },
  });
}

// Opens the conversation: in a window of the app if there is one (the page opens it when
// told, see push.js), else in a new one at the address the app opens conversations by.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const conversation = event.notification.data && event.notification.data.conversation_id;
  if (!Number.isInteger(conversation)) return;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const client = windows.find((c) => c.focused) || windows[0];
    if (!client) {
      await self.clients.openWindow("/#c" + conversation);
      return;
    }
    client.postMessage({ type: "open-conversation", conversation_id: conversation });
    await client.focus();
  })());
});

// The push service replaced (or expired) the subscription while perhaps no page is open.
// The worker subscribes again with the same server key and saves the new one with the
// token the page left in the shared store while notifications were on. That token is the
// one the page keeps in localStorage, so keeping it here exposes nothing new; a token that
// has expired by then fails here, and the page saves the current subscription on its next
// load anyway (push.js), so the subscription is never lost for longer than that.
self.addEventListener("pushsubscriptionchange", (event) => {
  event.waitUntil(resubscribe(event).catch((error) => console.warn("push subscription not renewed:", error)));
});

async function resubscribe(event) {
  const saved = await pushStore.get("subscriber"); // {token, key}, see push.js
  if (!saved) return; // notifications were turned off
  const key = (event.oldSubscription && event.oldSubscription.options.applicationServerKey) || saved.key;
  const subscription = event.newSubscription ||
    await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  const { endpoint, keys } = subscription.toJSON();
  // What ChatClient.savePushSubscription sends (web/client): this classic worker cannot
  // import the client's modules (module service workers are not in every browser yet).
  const response = await fetch("/v1/push/subscriptions", {
    method: "PUT",
    headers: { authorization: "Bearer " + saved.token, "content-type": "application/json" },
    body: JSON.stringify({ endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } }),
  });
  if (response.status !== 204) throw new Error("saving the new subscription answered " + response.status);
}
