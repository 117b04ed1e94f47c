// One connection to the chat's native WebSocket (`/v1/ws`) for many conversations: it
// reconnects with backoff and jitter, notices a stalled network by its heartbeat, resumes
// every subscription from the last message it delivered (so nothing is missed or shown
// twice), and sends through an outbox that keeps every message, with its idempotency key,
// until the server acknowledges it. Over HTTP it also saves and deletes the browser's web
// push subscription.
import { memoryOutbox } from "./outbox.js";
export class ChatClient {
    #options;
    #outbox;
    #WebSocket;
    #handlers = new Map();
    /** Subscribed conversations and the last message delivered in each. */
    #subscriptions = new Map();
    #waiting = new Map();
    #entries = new Map();
    #socket = null;
    #ready = false;
    #retries = 0;
    #closed = false;
    #timer;
    #heartbeat;
    #lastHeard = 0;
    #refs = 0;
    /** Resolves once the outbox's entries are loaded (`pending` lists them from then on). */
    loaded;
    constructor(options) {
        this.#options = {
            baseUrl: options.baseUrl.replace(/\/$/, ""),
            token: options.token,
            heartbeat: options.heartbeat ?? { everyMs: 15_000, stallMs: 8_000 },
            backoff: options.backoff ?? { initialMs: 500, maxMs: 10_000 },
        };
        this.#outbox = options.outbox ?? memoryOutbox();
        this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
        this.loaded = this.#outbox.load().then((entries) => {
            for (const entry of entries)
                this.#entries.set(entry.key, entry);
        });
    }
    on(event, handler) {
        let set = this.#handlers.get(event);
        if (!set)
            this.#handlers.set(event, (set = new Set()));
        set.add(handler);
        return () => set.delete(handler);
    }
    /** Opens the connection (and keeps it open until `close`). */
    async connect() {
        this.#closed = false;
        await this.loaded;
        if (this.#socket)
            return;
        await this.#open();
    }
    /** Gives the socket up now (the browser said the network went) and reconnects. */
    reconnect() {
        if (this.#socket)
            this.#lost(this.#socket);
        else if (!this.#closed)
            void this.#open();
    }
    close() {
        this.#closed = true;
        clearTimeout(this.#timer);
        clearInterval(this.#heartbeat);
        const socket = this.#socket;
        this.#socket = null;
        this.#ready = false;
        if (socket) {
            socket.onclose = null;
            socket.close(1000);
            this.#emit("state", "offline");
        }
    }
    /** Follows `conversation`, with every message after `since` delivered first. */
    subscribe(conversation, since) {
        const known = this.#subscriptions.get(conversation);
        this.#subscriptions.set(conversation, Math.max(known ?? 0, since ?? 0));
        this.#send({ type: "subscribe", conversation_id: conversation, since: since ?? known ?? null });
    }
    unsubscribe(conversation) {
        this.#subscriptions.delete(conversation);
        this.#send({ type: "unsubscribe", conversation_id: conversation });
    }
    /**
     * Sends a message; resolves once the log holds it. It waits in the outbox until then,
     * across reconnections (and across page loads with a persistent outbox); `key` makes
     * every retry the same message.
     */
    async send(conversation, text, options = {}) {
        await this.loaded;
        const entry = {
            key: options.key ?? crypto.randomUUID(),
            conversation_id: conversation,
            text,
            attachment: options.attachment ?? null,
        };
        this.#entries.set(entry.key, entry);
        await this.#outbox.put(entry);
        const answered = new Promise((resolve, reject) => this.#waiting.set(entry.key, { resolve, reject }));
        this.#transmit(entry);
        return answered;
    }
    /** Sends waiting for an acknowledgement (or refused), oldest first. */
    pending() {
        return [...this.#entries.values()];
    }
    /** Sends a refused send again, under its key. */
    retry(key) {
        const entry = this.#entries.get(key);
        if (!entry)
            return;
        entry.failed = null;
        void this.#outbox.put(entry);
        this.#transmit(entry);
    }
    /** Gives up a send that is waiting or was refused. */
    discard(key) {
        if (!this.#entries.delete(key))
            return;
        void this.#outbox.remove(key);
        this.#waiting.get(key)?.reject(new Error("discarded"));
        this.#waiting.delete(key);
    }
    /** False when not connected (nothing was sent). */
    typing(conversation, isTyping) {
        return this.#send({ type: "typing", conversation_id: conversation, is_typing: isTyping });
    }
    /** False when not connected: the caller may mark it read over HTTP instead. */
    read(conversation, upTo) {
        return this.#send({ type: "read", conversation_id: conversation, up_to: upTo });
    }
    /** Pings every `everyMs`, and gives a socket silent `stallMs` after one up. */
    setHeartbeat(everyMs, stallMs) {
        this.#options.heartbeat = { everyMs, stallMs };
        if (this.#ready)
            this.#startHeartbeat();
    }
    /** Uploads a file for `conversation`; the answer goes into `send`'s `attachment`. */
    async upload(conversation, file, name, onProgress) {
        const url = `${this.#options.baseUrl}/v1/conversations/${conversation}/attachments?name=${encodeURIComponent(name)}`;
        const token = await this.#options.token();
        if (onProgress && typeof XMLHttpRequest !== "undefined") {
            return new Promise((resolve, reject) => {
                const xhr = new XMLHttpRequest();
                xhr.open("POST", url);
                xhr.setRequestHeader("authorization", `Bearer ${token}`);
                xhr.upload.onprogress = (event) => onProgress(event.loaded, event.total);
                xhr.onload = () => (xhr.status === 201 ? resolve(JSON.parse(xhr.responseText)) : reject(problem(xhr.status, xhr.responseText)));
                xhr.onerror = () => reject(new Error("the upload did not reach the server"));
                xhr.send(file);
            });
        }
        const response = await fetch(url, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: file });
        const body = await response.text();
        if (response.status !== 201)
            throw problem(response.status, body);
        onProgress?.(file.size, file.size);
        return JSON.parse(body);
    }
    /**
     * The server's VAPID public key (base64url, an uncompressed P-256 point): the
     * `applicationServerKey` for `PushManager.subscribe`. `null` when the server sends no web
     * push (it answers 404), so a caller can say so instead of failing.
     */
    async pushPublicKey() {
        const response = await this.#request("GET", "/v1/push/vapid-public-key");
        if (response.status === 404)
            return null;
        const body = await response.text();
        if (!response.ok)
            throw problem(response.status, body);
        return JSON.parse(body).vapid_public_key;
    }
    /**
     * Has the server push to this browser: `subscription` is `PushSubscription.toJSON()`.
     * Saving the same one again changes nothing, so a page may save it on every load.
     */
    async savePushSubscription(subscription) {
        const { endpoint, keys } = subscription;
        if (!endpoint || !keys?.p256dh || !keys.auth) {
            throw new Error("a push subscription needs an endpoint and its p256dh and auth keys");
        }
        // Only the fields the server takes: it refuses unknown ones, and toJSON() adds
        // expirationTime.
        const body = { endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } };
        const response = await this.#request("PUT", "/v1/push/subscriptions", body);
        if (response.status !== 204)
            throw problem(response.status, await response.text());
    }
    /** Stops pushes to `endpoint`; one the server does not know (404) is stopped already. */
    async deletePushSubscription(endpoint) {
        const response = await this.#request("DELETE", "/v1/push/subscriptions", { endpoint });
        if (response.status !== 204 && response.status !== 404) {
            throw problem(response.status, await response.text());
        }
    }
    /** Replaces the text of one of the caller's messages (within the server's edit window). */
    async editMessage(conversation, messageId, text) {
        const path = `/v1/conversations/${conversation}/messages/${messageId}`;
        const response = await this.#request("PATCH", path, { text });
        if (!response.ok)
            throw problem(response.status, await response.text());
    }
    /** Deletes one of the caller's messages for everyone; deleting it again is done already. */
    async deleteMessage(conversation, messageId) {
        const path = `/v1/conversations/${conversation}/messages/${messageId}`;
        const response = await this.#request("DELETE", path);
        if (response.status !== 204)
            throw problem(response.status, await response.text());
    }
    /** An HTTP request to the chat with the caller's token, as the other calls make. */
    async #request(method, path, body) {
        const headers = { authorization: `Bearer ${await this.#options.token()}` };
        if (body !== undefined)
            headers["content-type"] = "application/json";
        return fetch(`${this.#options.baseUrl}${path}`, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
        });
    }
    async #open() {
        if (this.#closed)
            return;
        clearTimeout(this.#timer);
        const token = await this.#options.token();
        const scheme = this.#options.baseUrl.replace(/^http/, "ws");
        const socket = new this.#WebSocket(`${scheme}/v1/ws?token=${encodeURIComponent(token)}`);
        this.#socket = socket;
        this.#emit("state", "connecting");
        socket.onmessage = (event) => {
            if (this.#socket !== socket)
                return;
            this.#lastHeard = Date.now();
            this.#receive(JSON.parse(String(event.data)));
        };
        socket.onclose = (event) => {
            this.#emit("closed", event.code);
            this.#lost(socket);
        };
        socket.onerror = () => socket.close();
    }
    #receive(frame) {
        switch (frame.type) {
            case "ready":
                this.#ready = true;
                this.#retries = 0;
                this.#startHeartbeat();
                this.#emit("state", "online");
                for (const [conversation, last] of this.#subscriptions) {
                    this.#send({ type: "subscribe", conversation_id: conversation, since: last || null });
                }
                for (const entry of this.#entries.values())
                    this.#transmit(entry);
                break;
            case "message": {
                const message = frame.message;
                const last = this.#subscriptions.get(message.conversation_id);
                if (last !== undefined && message.id <= last)
                    return; // delivered before a resume
                if (last !== undefined)
                    this.#subscriptions.set(message.conversation_id, message.id);
                if (message.idempotency_key)
                    this.#settle(message.idempotency_key, message.id, false);
                this.#emit("message", message);
                break;
            }
            case "message_changed": {
                // In log order, after every message before it: resuming from its position misses
                // nothing.
                const last = this.#subscriptions.get(frame.conversation_id);
                if (last !== undefined && frame.position <= last)
                    return;
                if (last !== undefined)
                    this.#subscriptions.set(frame.conversation_id, frame.position);
                this.#emit("change", frame);
                break;
            }
            case "ack":
                if (frame.ref && frame.message_id != null)
                    this.#settle(frame.ref, frame.message_id, frame.duplicate ?? false);
                break;
            case "error": {
                const entry = frame.ref ? this.#entries.get(frame.ref) : undefined;
                if (entry) {
                    entry.failed = frame.detail;
                    void this.#outbox.put(entry);
                    this.#waiting.get(entry.key)?.reject(new Error(`${frame.code}: ${frame.detail}`));
                    this.#waiting.delete(entry.key);
                    this.#emit("failed", { key: entry.key, detail: frame.detail });
                }
                break;
            }
            default:
                break;
        }
        this.#emit("frame", frame);
    }
    /** An acknowledged (or delivered) send leaves the outbox; its waiter learns the id. */
    #settle(key, messageId, duplicate) {
        const entry = this.#entries.get(key);
        if (!entry)
            return;
        this.#entries.delete(key);
        void this.#outbox.remove(key);
        this.#waiting.get(key)?.resolve({ messageId, duplicate });
        this.#waiting.delete(key);
        this.#emit("sent", { key, conversationId: entry.conversation_id, messageId, duplicate });
    }
    #transmit(entry) {
        if (entry.failed)
            return; // refused: sent again only when retried
        // The key doubles as the frame's ref, so an ack finds its entry after any reconnect.
        const frame = {
            type: "send",
            ref: entry.key,
            conversation_id: entry.conversation_id,
            text: entry.text,
            idempotency_key: entry.key,
        };
        if (entry.attachment) {
            frame.attachment = entry.attachment;
            frame.message_type = entry.attachment.mime_type.startsWith("image/") ? "IMAGE" : "FILE";
        }
        this.#send(frame);
    }
    #send(frame) {
        if (this.#socket && this.#ready && this.#socket.readyState === this.#WebSocket.OPEN) {
            this.#socket.send(JSON.stringify(frame));
            return true;
        }
        return false;
    }
    #startHeartbeat() {
        clearInterval(this.#heartbeat);
        const { everyMs, stallMs } = this.#options.heartbeat;
        this.#heartbeat = setInterval(() => {
            const socket = this.#socket;
            if (!socket || !this.#ready)
                return;
            const sent = Date.now();
            this.#refs += 1;
            this.#send({ type: "ping", ref: `hb${this.#refs}` });
            setTimeout(() => {
                if (this.#socket === socket && this.#lastHeard < sent)
                    this.#lost(socket);
            }, stallMs);
        }, everyMs);
    }
    /** The socket ended or stalled: forget it and try again after a jittered backoff. */
    #lost(socket) {
        if (this.#socket !== socket)
            return;
        this.#socket = null;
        this.#ready = false;
        clearInterval(this.#heartbeat);
        socket.onclose = null;
        socket.close();
        this.#emit("state", "offline");
        if (this.#closed)
            return;
        const { initialMs, maxMs } = this.#options.backoff;
        const delay = Math.min(maxMs, initialMs * 2 ** this.#retries) * (0.75 + Math.random() / 2);
        this.#retries += 1;
        this.#timer = setTimeout(() => void this.#open(), delay);
    }
    #emit(event, value) {
        for (const handler of this.#handlers.get(event) ?? [])
            handler(value);
    }
    /** For tests: the socket stops carrying frames either way, without closing. */
    stallForTesting() {
        const socket = this.#socket;
        if (!socket)
            return;
        socket.onmessage = null;
        socket.send = () => undefined;
    }
}
function problem(status, body) {
    try {
        const parsed = JSON.parse(body);
        return new Error(`${status}: ${parsed.detail ?? body}`);
    }
    catch {
        return new Error(`${status}: ${body}`);
    }
}
