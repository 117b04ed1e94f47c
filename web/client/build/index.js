export { ChatClient } from "./client.js";
export { indexedDbOutbox, memoryOutbox } from "./outbox.js";
