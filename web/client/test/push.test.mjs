// The client's web push calls: what it sends (against a stand-in server that records each
// request), and the round trip against the real `chat dev` (CHAT_URL).
import assert from "node:assert/strict";
import { createECDH, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { test } from "node:test";

import { ChatClient } from "@chat/client";

const base = process.env.CHAT_URL;
const KEY = "BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U";

/** A server answering each request with `answer(request)`: {status, body}; it keeps them. */
async function standIn(answer) {
  const requests = [];
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => { body += chunk; });
    request.on("end", () => {
      const seen = { method: request.method, url: request.url, headers: request.headers, body: body ? JSON.parse(body) : null };
      requests.push(seen);
      const { status, body: reply } = answer(seen);
      response.writeHead(status, reply === undefined ? {} : { "content-type": "application/json" });
      response.end(reply === undefined ? undefined : JSON.stringify(reply));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, requests, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** What PushSubscription.toJSON() gives, with a real P-256 point and auth secret. */
function browserSubscription(endpoint) {
  const p256dh = createECDH("prime256v1").generateKeys().toString("base64url");
  return { endpoint, expirationTime: null, keys: { p256dh, auth: randomBytes(16).toString("base64url") } };
}

test("push calls carry the token, send only the fields the server takes, and read its answers", async () => {
  const server = await standIn((request) =>
    request.method === "GET" ? { status: 200, body: { vapid_public_key: KEY } } : { status: 204 });
  const client = new ChatClient({ baseUrl: server.url, token: async () => "t0ken" });
  const subscription = browserSubscription("https://push.example/s/1");
  assert.equal(await client.pushPublicKey(), KEY);
  await client.savePushSubscription(subscription);
  await client.deletePushSubscription(subscription.endpoint);
  await server.close();
  assert.deepEqual(server.requests.map((r) => [r.method, r.url, r.headers.authorization, r.body]), [
    ["GET", "/v1/push/vapid-public-key", "Bearer t0ken", null],
    ["PUT", "/v1/push/subscriptions", "Bearer t0ken", { endpoint: subscription.endpoint, keys: subscription.keys }],
    ["DELETE", "/v1/push/subscriptions", "Bearer t0ken", { endpoint: subscription.endpoint }],
  ]);
  assert.equal(server.requests[1].headers["content-type"], "application/json");
});

test("a server without web push (404) gives no key, and deleting there is done already; other refusals throw", async () => {
  const problem = { type: "urn:chat:problem:invalid", title: "Bad Request", status: 400, detail: "endpoint: not https" };
  const server = await standIn((request) =>
    request.method === "PUT" ? { status: 400, body: problem } : { status: 404, body: { status: 404 } });
  const client = new ChatClient({ baseUrl: server.url, token: () => "t" });
  assert.equal(await client.pushPublicKey(), null);
  await client.deletePushSubscription("https://push.example/s/1");
  await assert.rejects(client.savePushSubscription(browserSubscription("http://push.example/s/1")), /400: endpoint: not https/);
  await assert.rejects(client.savePushSubscription({ endpoint: "https://push.example/s/2" }), /p256dh and auth/);
  await server.close();
  assert.equal(server.requests.length, 3, "an incomplete subscription is refused before any request");
});

test("against chat dev: the server's key, and a subscription saved, saved again, and deleted", async (t) => {
  const response = await fetch(`${base}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sub: "pia", name: "Pia" }),
  });
  const jwt = (await response.json()).token;
  const client = new ChatClient({ baseUrl: base, token: () => jwt });
  const key = await client.pushPublicKey();
  if (key === null) {
    // Said in the test report, not passed over: the server has no /v1/push routes yet.
    t.skip("this chat dev answers 404 to GET /v1/push/vapid-public-key: no web push to test against");
    return;
  }
  const point = Buffer.from(key, "base64url");
  assert.equal(point.length, 65, "an uncompressed P-256 point");
  assert.equal(point[0], 4);
  const subscription = browserSubscription(`https://fcm.googleapis.com/fcm/send/client-test-${Date.now()}`);
  await client.savePushSubscription(subscription);
  await client.savePushSubscription(subscription);
  await client.deletePushSubscription(subscription.endpoint);
  const stranger = new ChatClient({ baseUrl: base, token: () => "not-a-token" });
  await assert.rejects(stranger.savePushSubscription(subscription), /^Error: 401/);
});
