export { ChatClient, type ChatClientOptions, type MessageChanged, type Sent } from "./client.js";
export { indexedDbOutbox, memoryOutbox, type OutboxEntry, type OutboxStore } from "./outbox.js";
export type { ClientFrame } from "./generated/client-frame.js";
export type * from "./generated/server-frame.js";
