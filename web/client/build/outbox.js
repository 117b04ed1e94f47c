// Where sends wait until the server acknowledges them. A persistent store keeps them across
// page loads and closed tabs; every entry carries its idempotency key, so sending one again
// (from a new page, or from two tabs at once) is the same message.
/** Kept in memory only: lost with the process. */
export function memoryOutbox(initial = []) {
    const store = {
        entries: [...initial],
        async load() {
            return [...store.entries];
        },
        async put(entry) {
            store.entries = [...store.entries.filter((kept) => kept.key !== entry.key), entry];
        },
        async remove(key) {
            store.entries = store.entries.filter((kept) => kept.key !== key);
        },
    };
    return store;
}
/** Kept in IndexedDB under `name` (one database per signed-in user, say). */
export function indexedDbOutbox(name) {
    const opened = new Promise((resolve, reject) => {
        const request = indexedDB.open(name, 1);
        request.onupgradeneeded = () => request.result.createObjectStore("outbox", { keyPath: "key" });
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
    });
    const run = async (mode, work) => {
        const db = await opened;
        return new Promise((resolve, reject) => {
            const transaction = db.transaction("outbox", mode);
            const request = work(transaction.objectStore("outbox"));
            transaction.oncomplete = () => resolve(request.result);
            transaction.onerror = () => reject(transaction.error);
        });
    };
    return {
        async load() {
            return (await run("readonly", (store) => store.getAll())) ?? [];
        },
        async put(entry) {
            await run("readwrite", (store) => store.put(entry));
        },
        async remove(key) {
            await run("readwrite", (store) => store.delete(key));
        },
    };
}
