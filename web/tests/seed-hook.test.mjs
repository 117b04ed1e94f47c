// The ancestor design's own React client, unchanged (web/tests/seed/: its `useChat` hook and
// `ChatWindow` component), against a real `chat dev` on localhost:8000, the address the hook
// hard-codes: it authenticates with the session cookie, and chats with the web app both ways.
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
  if (errors.length) throw new Error(`errors in the pages: ${errors.join("; ")}`);
  console.log("PASS: the seed's useChat hook, unchanged, chats with the web app");
} finally {
  await browser.close();
}
