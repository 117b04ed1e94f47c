// A small key-value store in IndexedDB that the page and the service worker (sw.js, through
// importScripts) share: the page leaves there what the worker needs to renew the push
// subscription without a page (see sw.js), and the worker remembers which notifications it
// has shown. A classic script, so both can load it.
"use strict";

const pushStore = (() => {
  const opened = () => new Promise((resolve, reject) => {
    const request = indexedDB.open("chat.push", 1);
    request.onupgradeneeded = () => request.result.createObjectStore("kv");
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });

  // Runs `work(store)` in one transaction; resolves with what it returns once committed.
  async function inTransaction(mode, work) {
    const db = await opened();
    try {
      return await new Promise((resolve, reject) => {
        const transaction = db.transaction("kv", mode);
        let result;
        Promise.resolve(work(transaction.objectStore("kv"))).then((value) => { result = value; }, reject);
        transaction.oncomplete = () => resolve(result);
        transaction.onerror = () => reject(transaction.error);
        transaction.onabort = () => reject(transaction.error);
      });
    } finally {
      db.close();
    }
  }

  const read = (store, key) => new Promise((resolve, reject) => {
    const request = store.get(key);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });

  return {
    get: (key) => inTransaction("readonly", (store) => read(store, key)),
    put: (key, value) => inTransaction("readwrite", (store) => { store.put(value, key); }),
    remove: (key) => inTransaction("readwrite", (store) => { store.delete(key); }),
    // True the first time `id` is offered, false for a repeat: the check and the write are
    // one transaction, so two deliveries of one push at once still show it once. The last
    // `keep` ids are remembered.
    firstTime: (id, keep = 200) => inTransaction("readwrite", async (store) => {
      const seen = (await read(store, "seen")) || [];
      if (seen.includes(id)) return false;
      store.put(seen.concat(id).slice(-keep), "seen");
      return true;
    }),
  };
})();
