// The client against a real `chat dev` (CHAT_URL): sends acknowledged once, resume after a
// lost connection with nothing missed or doubled, an outbox that survives its process, a
// stalled socket noticed by the heartbeat, and attachments.
import assert from "node:assert/strict";
import { test } from "node:test";

// By the package's own name: its entry point is what the tests use.
import { ChatClient, memoryOutbox } from "@chat/client";

const base = process.env.CHAT_URL;
assert.ok(base, "CHAT_URL names the chat dev under test");
let jobs = 0;

async function token(sub, service = false) {
  const response = await fetch(`${base}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sub, name: sub[0].toUpperCase() + sub.slice(1), service }),
  });
  return (await response.json()).token;
}

async function conversation(client, worker) {
  jobs += 1;
  const response = await fetch(`${base}/v1/jobs/client-test-${Date.now()}-${jobs}/conversation`, {
    method: "PUT",
    headers: { authorization: `Bearer ${await token("jobs", true)}`, "content-type": "application/json" },
    body: JSON.stringify({ client_id: client, worker_id: worker }),
  });
  return (await response.json()).conversation_id;
}

async function history(user, id) {
  const response = await fetch(`${base}/v1/conversations/${id}/messages?limit=200`, {
    headers: { authorization: `Bearer ${await token(user)}` },
  });
  return (await response.json()).messages;
}

/** A connected client for `user` that records every message it is given. */
async function connected(user, options = {}) {
  const jwt = await token(user);
  const client = new ChatClient({ baseUrl: base, token: () => jwt, backoff: { initialMs: 50, maxMs: 200 }, ...options });
  client.seen = [];
  client.on("message", (message) => client.seen.push(message));
  const online = new Promise((resolve) => client.on("state", (state) => state === "online" && resolve()));
  await client.connect();
  await online;
  return client;
}

async function until(what, probe, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

test("a send resolves with its id once acknowledged, and the same key is the same message", async () => {
  const id = await conversation("ada", "bo");
  const ada = await connected("ada");
  const bo = await connected("bo");
  bo.subscribe(id);
  const sent = await ada.send(id, "hello", { key: "k-1" });
  assert.equal(sent.duplicate, false);
  await until("bo receives it", () => bo.seen.some((m) => m.id === sent.messageId));
  const again = await ada.send(id, "hello", { key: "k-1" });
  assert.deepEqual(again, { messageId: sent.messageId, duplicate: true });
  assert.equal((await history("ada", id)).length, 1);
  assert.deepEqual(ada.pending(), []);
  ada.close();
  bo.close();
});

test("after a lost connection every subscription resumes: nothing missed, nothing twice", async () => {
  const id = await conversation("cy", "di");
  const cy = await connected("cy");
  const di = await connected("di");
  di.subscribe(id);
  const first = await cy.send(id, "one");
  await until("di has the first", () => di.seen.length === 1);
  // Drop di's socket the hard way: the server never sees a close.
  const offline = new Promise((resolve) => di.on("state", (state) => state === "offline" && resolve()));
  di.close();
  await offline;
  const sentWhileAway = [];
  for (const text of ["two", "three"]) sentWhileAway.push((await cy.send(id, text)).messageId);
  await di.connect();
  await until("di has all three, once each, in order", () => di.seen.length === 3);
  assert.deepEqual(di.seen.map((m) => m.id), [first.messageId, ...sentWhileAway]);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(di.seen.length, 3, "no message was delivered twice");
  cy.close();
  di.close();
});

test("the outbox outlives its process: a new client sends what the old one could not, once", async () => {
  const id = await conversation("ed", "flo");
  const kept = memoryOutbox([{ key: "outbox-1", conversation_id: id, text: "written offline", attachment: null }]);
  // Two tabs that both loaded the same outbox send it at once: one message.
  const tabs = [await connected("ed", { outbox: kept }), await connected("ed", { outbox: memoryOutbox(kept.entries) })];
  await until("both tabs' outboxes drain", () => tabs.every((tab) => tab.pending().length === 0));
  await until("the message in flo's history", async () => (await history("flo", id)).length > 0);
  const messages = await history("flo", id);
  assert.deepEqual(messages.map((m) => m.text), ["written offline"]);
  assert.deepEqual(kept.entries, [], "the acknowledged send left the store");
  tabs.forEach((tab) => tab.close());
});

test("a refused send stays in the outbox, unsent, until retried or discarded", async () => {
  const id = await conversation("kim", "lou");
  const store = memoryOutbox();
  const kim = await connected("kim", { outbox: store });
  const failures = [];
  kim.on("failed", (failure) => failures.push(failure));
  const tooLong = "x".repeat(5000);
  await assert.rejects(kim.send(id, tooLong, { key: "too-long" }), /invalid/);
  assert.deepEqual(failures.map((f) => f.key), ["too-long"]);
  assert.equal(store.entries[0].failed.length > 0, true, "kept, marked refused");
  // A reconnection does not send a refused message again; a retry does.
  kim.reconnect();
  await until("kim is back", () => kim.pending().length === 1 && failures.length === 1);
  kim.retry("too-long");
  await until("the retry is refused too", () => failures.length === 2);
  kim.discard("too-long");
  assert.deepEqual(kim.pending(), []);
  assert.deepEqual(store.entries, [], "discarded from the store");
  await kim.send(id, "short enough");
  await until("the message in lou's history", async () => (await history("lou", id)).length === 1);
  assert.deepEqual((await history("lou", id)).map((m) => m.text), ["short enough"]);
  kim.close();
});

test("a stalled socket is noticed by the heartbeat and replaced; the send waiting on it lands once", async () => {
  const id = await conversation("gus", "hal");
  const gus = await connected("gus", { heartbeat: { everyMs: 200, stallMs: 200 } });
  const states = [];
  gus.on("state", (state) => states.push(state));
  gus.stallForTesting();
  const sent = gus.send(id, "sent into the stall");
  await until("gus gives up the stalled socket and comes back", () => states.includes("offline") && states.at(-1) === "online");
  const { messageId } = await sent;
  await until("the message in hal's history", async () => (await history("hal", id)).length > 0);
  const messages = await history("hal", id);
  assert.deepEqual(messages.map((m) => [m.id, m.text]), [[messageId, "sent into the stall"]]);
  gus.close();
});

test("an upload becomes an attachment the message carries; an outsider's upload is refused", async () => {
  const id = await conversation("ivy", "jo");
  const ivy = await connected("ivy");
  let progress = 0;
  const file = new Blob(["bring the ladder\n"], { type: "application/octet-stream" });
  const attachment = await ivy.upload(id, file, "notes.txt", (sent) => { progress = sent; });
  assert.equal(attachment.mime_type, "text/plain");
  assert.equal(progress, file.size);
  await ivy.send(id, "", { attachment });
  // Acknowledged means in the log; history is the projection, which follows shortly.
  let message;
  await until("the message in jo's history", async () => ([message] = await history("jo", id)).length === 1);
  assert.equal(message.attachment.upload_id, attachment.upload_id);
  const outsider = new ChatClient({ baseUrl: base, token: () => token("mallory") });
  await assert.rejects(outsider.upload(id, file, "x.txt"), /404/);
  ivy.close();
});

test("edits and deletions reach the other side after their message, and a resume replays those missed", async () => {
  const id = await conversation("gus", "hal");
  const gus = await connected("gus");
  const hal = await connected("hal");
  hal.changes = [];
  hal.on("change", (change) => hal.changes.push(change));
  hal.subscribe(id);
  const first = await gus.send(id, "the quote is 100");
  const second = await gus.send(id, "my number is 555-0100");
  await until("hal has both", () => hal.seen.length === 2);
  await gus.editMessage(id, first.messageId, "the quote is 150");
  await until("hal has the edit", () => hal.changes.length === 1);
  assert.equal(hal.changes[0].message_id, first.messageId);
  assert.deepEqual([hal.changes[0].change.kind, hal.changes[0].change.text], ["edited", "the quote is 150"]);

  // Hal goes away; the deletion happens meanwhile, and comes with the resume.
  const offline = new Promise((resolve) => hal.on("state", (state) => state === "offline" && resolve()));
  hal.close();
  await offline;
  await gus.deleteMessage(id, second.messageId);
  await gus.deleteMessage(id, second.messageId);
  await hal.connect();
  await until("hal has the deletion", () => hal.changes.length === 2);
  assert.equal(hal.changes[1].change.kind, "deleted");
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(hal.changes.length, 2, "no change twice");
  await assert.rejects(hal.editMessage(id, first.messageId, "not mine"), /403/);
  gus.close();
  hal.close();
});
