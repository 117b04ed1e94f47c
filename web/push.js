// Notifications of new messages by web push, through the service worker (sw.js), which also
// keeps the app shell for offline reloads. Permission is asked after the user's first send,
// when a notification of the answer is plainly useful, never on load; the checkbox in the
// top bar turns them on and off. Part of the web app (see app.js).
"use strict";

const NOTIFICATIONS_KEY = "chat.notifications"; // "on" or "off"; absent: not offered yet
const WORKER_WAIT_MS = 10_000;

function pushSupported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

// On every load, signed in or not: the worker must be there for the shell to load offline.
function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/sw.js").catch((error) => console.warn("no service worker:", error.message));
  // A click on a notification while the app is open (see sw.js).
  navigator.serviceWorker.addEventListener("message", (event) => {
    const data = event.data || {};
    if (data.type !== "open-conversation" || !state.me || !Number.isInteger(data.conversation_id)) return;
    $("chat-view").dataset.pane = "conversation";
    openConversation(data.conversation_id);
  });
  navigator.serviceWorker.startMessages();
}

// Signed in: the checkbox as set, and the subscription saved again (the server may have
// lost it, the push service may have replaced it, and the worker keeps a fresh token).
function loadNotifications() {
  const supported = pushSupported();
  $("notifications-setting").hidden = !supported;
  if (!supported) return;
  const on = localStorage.getItem(NOTIFICATIONS_KEY) === "on" && Notification.permission === "granted";
  $("notifications").checked = on;
  if (on) subscribePush(false);
}

// After a send the user just made: the permission prompt belongs to that gesture.
function offerNotifications() {
  if (localStorage.getItem(NOTIFICATIONS_KEY) !== null || !pushSupported()) return;
  localStorage.setItem(NOTIFICATIONS_KEY, "off"); // offered once; the checkbox changes it
  turnNotificationsOn(false);
}

function onNotificationsToggled() {
  if ($("notifications").checked) turnNotificationsOn(true); else turnNotificationsOff();
}

async function turnNotificationsOn(asked) {
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    $("notifications").checked = false;
    if (asked || permission === "denied") notice("Notifications are blocked in this browser's settings for this site.");
    return;
  }
  localStorage.setItem(NOTIFICATIONS_KEY, "on");
  $("notifications").checked = true;
  await subscribePush(true);
}

// Subscribes this browser (again, if the server's key changed) and has the server push to
// it. Failing is expected in some browsers (no push service reachable): a quiet note, and
// the next load tries again.
async function subscribePush(loud) {
  try {
    const key = await state.client.pushPublicKey();
    if (!key) throw new Error("this server sends none");
    const registration = await workerReady();
    let subscription = await registration.pushManager.getSubscription();
    if (subscription && !sameKey(subscription.options.applicationServerKey, key)) {
      await subscription.unsubscribe();
      subscription = null;
    }
    if (!subscription) {
      subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    }
    await state.client.savePushSubscription(subscription.toJSON());
    await pushStore.put("subscriber", { token: state.token, key }); // for sw.js
    $("notifications-setting").title = "";
  } catch (error) {
    $("notifications-setting").title = "Not available: " + error.message;
    const note = "Notifications are not available here (" + error.message + ").";
    if (loud) notice(note); else console.info(note);
  }
}

async function turnNotificationsOff() {
  localStorage.setItem(NOTIFICATIONS_KEY, "off");
  $("notifications-setting").title = "";
  await forgetPush();
}

// The server stops pushing to this browser, and the browser drops the subscription (a
// server that missed the DELETE learns it at its next push, which the push service refuses).
async function forgetPush() {
  await pushStore.remove("subscriber").catch(() => { /* nothing stored */ });
  if (!pushSupported()) return;
  const registration = await navigator.serviceWorker.getRegistration();
  const subscription = registration && await registration.pushManager.getSubscription();
  if (!subscription) return;
  if (state.client) {
    await state.client.deletePushSubscription(subscription.endpoint)
      .catch((error) => console.warn("the server keeps the subscription:", error.message));
  }
  await subscription.unsubscribe().catch(() => { /* gone already */ });
}

function workerReady() {
  const late = new Promise((_, reject) =>
    setTimeout(() => reject(new Error("the service worker did not start")), WORKER_WAIT_MS));
  return Promise.race([navigator.serviceWorker.ready, late]);
}

// Whether a subscription's key (bytes) is `key` (base64url).
function sameKey(bytes, key) {
  if (!bytes) return false;
  const encoded = btoa(String.fromCharCode(...new Uint8Array(bytes)));
  return encoded.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "") === key.replace(/=+$/, "");
}
