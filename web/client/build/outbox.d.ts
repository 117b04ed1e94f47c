import type { Attachment } from "./generated/server-frame.js";
export interface OutboxEntry {
    key: string;
    conversation_id: number;
    text: string;
    attachment: Attachment | null;
    /** Why the server refused it, if it did: kept (for a retry or a discard), not resent. */
    failed?: string | null;
}
/** One entry per send, written and removed one at a time, so that tabs sharing a store
 * never overwrite each other's sends. */
export interface OutboxStore {
    load(): Promise<OutboxEntry[]>;
    put(entry: OutboxEntry): Promise<void>;
    remove(key: string): Promise<void>;
}
/** Kept in memory only: lost with the process. */
export declare function memoryOutbox(initial?: OutboxEntry[]): OutboxStore & {
    entries: OutboxEntry[];
};
/** Kept in IndexedDB under `name` (one database per signed-in user, say). */
export declare function indexedDbOutbox(name: string): OutboxStore;
