// The ancestor design's own React client, unchanged (web/tests/seed/: its `useChat` hook and
// `ChatWindow` component), against a real `chat dev` on localhost:8000, the address the hook
// hard-codes: it authenticates with the session cookie, and chats with the web app both ways.
// Edits and deletions, which its protocol has no frame for, leave it as it was: no message
// twice, nothing half-formed; a reconnection with `?since` gets the messages as they are now.
//
//   node seed-hook.test.mjs            (chat dev must be serving on 127.0.0.1:8000)
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));
const base = "http://127.0.0.1:8000";
const WAIT = 10_000;

function transpile(file) {
  const source = readFileSync(join(here, "seed", file), "utf8");
  const options = { module: ts.ModuleKind.CommonJS, jsx: ts.JsxEmit.React, target: ts.ScriptTarget.ES2020 };
  return ts.transpileModule(source, { compilerOptions: options }).outputText;
}

// The seed's modules, wired as its bundler would have: "react" is React itself, and the
// notification sound the hook plays is counted.
function page(conversation) {
  // The UMD builds, which the packages ship but do not export.
  const react = readFileSync(join(here, "node_modules/react/umd/react.production.min.js"), "utf8");
  const reactDom = readFileSync(join(here, "node_modules/react-dom/umd/react-dom.production.min.js"), "utf8");
  const module = (name, code) => `define(${JSON.stringify(name)}, function (exports, require, module) {\n${code}\n});`;
  return `<!doctype html><meta charset="utf-8"><title>seed useChat</title><div id="root"></div>
<script>${react}</script><script>${reactDom}</script>
<script>
window.notified = 0;
window.playNotificationSound = () => { window.notified += 1; };
const modules = {};
function define(name, factory) { modules[name] = { factory }; }
function require(name) {
  if (name === "react") return window.React;
  const found = modules[name];
  if (!found.exports) { const module = { exports: {} }; found.factory(module.exports, require, module); found.exports = module.exports; }
  return found.exports;
}
${module("@/hooks/useChat", transpile("useChat.ts"))}
${module("ChatWindow", transpile("ChatWindow.tsx"))}
ReactDOM.createRoot(document.getElementById("root")).render(React.createElement(require("ChatWindow").ChatWindow, { conversationId: ${conversation} }));
</script>`;
}

async function token(sub, name) {
  const response = await fetch(`${base}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sub, name }),
  });
  return (await response.json()).token;
}

// The seed's page is served by this test, which Chromium counts as a page of the public
// internet, and its local-network checks would keep such a page from opening a socket to
// localhost. Deployed, the page comes from the chat's own host.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-features=LocalNetworkAccessChecks"],
});
try {
  const errors = [];
  // The demo conversation of chat dev: alice (client) and bob (worker).
  const conversation = 1;
  const seed = await (await browser.newContext()).newPage();
  seed.on("pageerror", (error) => errors.push(`seed: ${error.message}`));
  await seed.context().addCookies([{ name: "chat_token", value: await token("alice", "Alice"), url: "http://localhost:8000" }]);
  await seed.route("http://localhost:8000/seed.html", (route) => route.fulfill({ contentType: "text/html", body: page(conversation) }));
  await seed.goto("http://localhost:8000/seed.html");
  await seed.locator(".status", { hasText: "🟢 Connected" }).waitFor({ timeout: WAIT });
  console.log("the seed's hook is connected with the session cookie");

  const app = await (await browser.newContext()).newPage();
  app.on("pageerror", (error) => errors.push(`app: ${error.message}`));
  await app.goto(base + "/");
  await app.click('[data-quick-user="bob"]');
  await app.locator(`#conversation-list [data-conversation-id="${conversation}"]`).click();
  await app.locator("#message-input").waitFor({ timeout: WAIT });
  await app.fill("#message-input", "From the web app");
  await app.click("#send-button");
  const received = seed.locator(".message", { hasText: "From the web app" });
  await received.waitFor({ timeout: WAIT });
  const shown = await received.textContent();
  if (!shown.startsWith("Bob:")) throw new Error(`the hook shows ${JSON.stringify(shown)}`);
  if ((await received.locator(".timestamp").textContent()) === "Invalid Date") throw new Error("the hook cannot read the timestamp");
  if ((await seed.evaluate(() => window.notified)) < 1) throw new Error("the hook's notification never played");
  console.log("the hook shows the web app's message, with its sender and time");

  await seed.fill(".input-area input", "From the seed's hook");
  await seed.click(".input-area button");
  await app.locator("#messages .message[data-message-id]", { hasText: "From the seed's hook" }).waitFor({ timeout: WAIT });
  console.log("the web app shows the hook's message");

  // Bob changes two of his messages through the HTTP API: his page follows (native
  // frames); the hook gets nothing, and shows each message once, as delivered.
  const bob = await token("bob", "Bob");
  const http = async (method, path, body) => {
    const response = await fetch(base + path, {
      method,
      headers: { authorization: "Bearer " + bob, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${await response.text()}`);
    return response.status === 204 ? null : response.json();
  };
  const sendAs = async (text) => (await http("POST", `/v1/conversations/${conversation}/messages`, { text })).id;
  const texts = ["To be edited", "To be deleted"];
  const [toEdit, toDelete] = [await sendAs(texts[0]), await sendAs(texts[1])];
  for (const text of texts) await seed.locator(".message", { hasText: text }).waitFor({ timeout: WAIT });
  await http("PATCH", `/v1/conversations/${conversation}/messages/${toEdit}`, { text: "Edited through the API" });
  await http("DELETE", `/v1/conversations/${conversation}/messages/${toDelete}`);
  const row = (id) => app.locator(`#messages .message[data-message-id="${id}"]`);
  await row(toEdit).locator(".message-text", { hasText: "Edited through the API" }).waitFor({ timeout: WAIT });
  await row(toEdit).locator(".edited").waitFor({ timeout: WAIT });
  await row(toDelete).locator(".deleted-text").waitFor({ timeout: WAIT });
  console.log("the web app shows the edit and the deletion live");
  // A message after the changes: once the hook has it, it has had whatever came before.
  await sendAs("After the changes");
  await seed.locator(".message", { hasText: "After the changes" }).waitFor({ timeout: WAIT });
  const listed = await seed.$$eval(".messages .message", (nodes) => nodes.map((node) => node.textContent));
  const expected = ["From the web app", "From the seed's hook", ...texts, "After the changes"];
  const bodies = listed.map((text) => text.replace(/^[^:]*: /, "").replace(/\d{1,2}:\d{2}:\d{2}.*$/, ""));
  if (JSON.stringify(bodies) !== JSON.stringify(expected)) throw new Error(`after the changes the hook shows ${JSON.stringify(listed)}`);
  if (listed.some((text) => /undefined|null|Invalid Date/.test(text))) throw new Error(`the hook shows garbage: ${JSON.stringify(listed)}`);
  console.log("after an edit and a deletion the hook shows every message once, as delivered");

  // What a reconnecting seed client gets: the edited message as it is now, the deleted one
  // not at all, each once.
  const replayed = await seed.evaluate(({ conversation, since }) => new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://localhost:8000/ws/chat/${conversation}/?since=${since}`);
    const frames = [];
    socket.onmessage = (event) => {
      frames.push(JSON.parse(event.data));
      if (frames.at(-1).message && frames.at(-1).message.message_text === "After the changes") { socket.close(); resolve(frames); }
    };
    socket.onclose = (event) => reject(new Error(`closed (${event.code}) after ${JSON.stringify(frames)}`));
    setTimeout(() => reject(new Error(`only ${JSON.stringify(frames)}`)), 10_000);
  }), { conversation, since: toEdit - 1 });
  const replayedTexts = replayed.map((frame) => frame.type === "message" ? frame.message.message_text : JSON.stringify(frame));
  if (JSON.stringify(replayedTexts) !== JSON.stringify(["Edited through the API", "After the changes"])) {
    throw new Error(`a reconnection with ?since replayed ${JSON.stringify(replayed)}`);
  }
  console.log("a reconnection with ?since gets the edited message as it is now, and not the deleted one");
  if (errors.length) throw new Error(`errors in the pages: ${errors.join("; ")}`);
  console.log("PASS: the seed's useChat hook, unchanged, chats with the web app");
} finally {
  await browser.close();
}
