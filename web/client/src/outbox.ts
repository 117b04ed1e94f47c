// Where sends wait until the server acknowledges them. A persistent store keeps them across
// page loads and closed tabs; every entry carries its idempotency key, so sending one again
// (from a new page, or from two tabs at once) is the same message.

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
export function memoryOutbox(initial: OutboxEntry[] = []): OutboxStore & { entries: OutboxEntry[] } {
  const store = {
    entries: [...initial],
    async load() {
      return [...store.entries];
    },
    async put(entry: OutboxEntry) {
      store.entries = [...store.entries.filter((kept) => kept.key !== entry.key), entry];
    },
    async remove(key: string) {
      store.entries = store.entries.filter((kept) => kept.key !== key);
    },
  };
  return store;
}

/** Kept in IndexedDB under `name` (one database per signed-in user, say). */
export function indexedDbOutbox(name: string): OutboxStore {
  const opened = new Promise<IDBDatabase>((resolve, reject) => {
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => request.result.createObjectStore("outbox", { keyPath: "key" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const run = async (mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest) => {
    const db = await opened;
    return new Promise<unknown>((resolve, reject) => {
      const transaction = db.transaction("outbox", mode);
      const request = work(transaction.objectStore("outbox"));
      transaction.oncomplete = () => resolve(request.result);
      transaction.onerror = () => reject(transaction.error);
    });
  };
  return {
    async load() {
      return ((await run("readonly", (store) => store.getAll())) as OutboxEntry[]) ?? [];
    },
    async put(entry) {
      await run("readwrite", (store) => store.put(entry));
    },
    async remove(key) {
      await run("readwrite", (store) => store.delete(key));
    },
  };
}
