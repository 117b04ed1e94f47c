// Generates src/generated/*.ts from the published JSON Schemas of the native WebSocket
// protocol (schemas/generated/ws/native-*.json), so the client's types are the server's.
//
//   node scripts/generate-types.mjs           writes them
//   node scripts/generate-types.mjs --check   fails when one is out of date
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { compile } from "json-schema-to-typescript";

const here = dirname(fileURLToPath(import.meta.url));
const schemas = join(here, "../../../schemas/generated/ws");
const banner = "// Generated from schemas/generated/ws by scripts/generate-types.mjs; do not edit.\n\n";
const outputs = [
  ["native-client-frame.json", "ClientFrame", "client-frame.ts"],
  ["native-server-frame.json", "ServerFrame", "server-frame.ts"],
];
let stale = [];
for (const [file, name, output] of outputs) {
  const schema = JSON.parse(readFileSync(join(schemas, file), "utf8"));
  schema.title = name;
  const text = banner + (await compile(schema, name, { bannerComment: "", additionalProperties: false }));
  const target = join(here, "../src/generated", output);
  if (process.argv.includes("--check")) {
    let current = "";
    try { current = readFileSync(target, "utf8"); } catch { /* missing */ }
    if (current !== text) stale.push(output);
  } else {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, text);
  }
}
if (stale.length) {
  console.error(`src/generated/${stale.join(", ")} out of date with the schemas: run \`npm run generate\` in web/client`);
  process.exit(1);
}
