// One connection to the chat's native WebSocket (`/v1/ws`) for many conversations: it
// reconnects with backoff and jitter, notices a stalled network by its heartbeat, resumes
// every subscription from the last message it delivered (so nothing is missed or shown
// twice), and sends through an outbox that keeps every message, with its idempotency key,
// until the server acknowledges it. Over HTTP it also saves and deletes the browser's web
// push subscription.

import type { ClientFrame } from "./generated/client-frame.js";
import type { Attachment, Message, ServerFrame } from "./generated/server-frame.js";
import { type OutboxEntry, type OutboxStore, memoryOutbox } from "./outbox.js";

export interface ChatClientOptions {
  /** `http(s)://host:port` of the chat; the socket goes to its `/v1/ws`. */
  baseUrl: string;
  /** The caller's JWT; asked again before every connection, so it may be refreshed. */
  token: () => string | Promise<string>;
  /** Where unsent messages wait (default: memory only; `indexedDbOutbox` in browsers). */
  outbox?: OutboxStore;
  /** A ping this often, and a socket silent this long after one is given up. */
  heartbeat?: { everyMs: number; stallMs: number };
  /** Reconnect delays: `initialMs` doubling up to `maxMs`, each with ±25 % jitter. */
  backoff?: { initialMs: number; maxMs: number };
  /** A WebSocket constructor (default: the global one). */
  WebSocket?: typeof WebSocket;
}

/** What a send resolves with once the log holds the message. */
export interface Sent {
  messageId: number;
  duplicate: boolean;
}

/** A message already delivered changed: apply `change` to it (applying it twice is harmless). */
export type MessageChanged = Extract<ServerFrame, { type: "message_changed" }>;

type Events = {
  message: Message;
  /** Comes after the message it changes, in the log's order. */
  change: MessageChanged;
  frame: ServerFrame;
  state: "connecting" | "online" | "offline";
  /** The socket closed with this code (4401: the token is no longer accepted). */
  closed: number;
  /** A send left the outbox: the log holds it as `messageId`. */
  sent: { key: string; conversationId: number; messageId: number; duplicate: boolean };
  /** The server refused a send; it stays in the outbox, unsent, for `retry` or `discard`. */
  failed: { key: string; detail: string };
};
type Handler<T> = (value: T) => void;

/** A send as the outbox keeps it, and how to answer whoever is waiting for it. */
interface Waiting {
  resolve: (sent: Sent) => void;
  reject: (error: Error) => void;
}

export class ChatClient {
  readonly #options: Required<Omit<ChatClientOptions, "outbox" | "WebSocket">>;
  readonly #outbox: OutboxStore;
  readonly #WebSocket: typeof WebSocket;
  readonly #handlers = new Map<keyof Events, Set<Handler<never>>>();
  /** Subscribed conversations and the last message delivered in each. */
  readonly #subscriptions = new Map<number, number>();
  readonly #waiting = new Map<string, Waiting>();
  #entries = new Map<string, OutboxEntry>();
  #socket: WebSocket | null = null;
  #ready = false;
  #retries = 0;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #lastHeard = 0;
  #refs = 0;
  /** Resolves once the outbox's entries are loaded (`pending` lists them from then on). */
  readonly loaded: Promise<void>;

  constructor(options: ChatClientOptions) {
    this.#options = {
      baseUrl: options.baseUrl.replace(/\/$/, ""),
      token: options.token,
      heartbeat: options.heartbeat ?? { everyMs: 15_000, stallMs: 8_000 },
      backoff: options.backoff ?? { initialMs: 500, maxMs: 10_000 },
    };
    this.#outbox = options.outbox ?? memoryOutbox();
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.loaded = this.#outbox.load().then((entries) => {
      for (const entry of entries) this.#entries.set(entry.key, entry);
    });
  }

  on<K extends keyof Events>(event: K, handler: Handler<Events[K]>): () => void {
    let set = this.#handlers.get(event);
    if (!set) this.#handlers.set(event, (set = new Set()));
    set.add(handler as Handler<never>);
    return () => set.delete(handler as Handler<never>);
  }

  /** Opens the connection (and keeps it open until `close`). */
  async connect(): Promise<void> {
    this.#closed = false;
    await this.loaded;
    if (this.#socket) return;
    await this.#open();
  }

  /** Gives the socket up now (the browser said the network went) and reconnects. */
  reconnect(): void {
    if (this.#socket) this.#lost(this.#socket);
    else if (!this.#closed) void this.#open();
  }

  close(): void {
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
  subscribe(conversation: number, since?: number): void {
    const known = this.#subscriptions.get(conversation);
    this.#subscriptions.set(conversation, Math.max(known ?? 0, since ?? 0));
    this.#send({ type: "subscribe", conversation_id: conversation, since: since ?? known ?? null });
  }

  unsubscribe(conversation: number): void {
    this.#subscriptions.delete(conversation);
    this.#send({ type: "unsubscribe", conversation_id: conversation });
  }

  /**
   * Sends a message; resolves once the log holds it. It waits in the outbox until then,
   * across reconnections (and across page loads with a persistent outbox); `key` makes
   * every retry the same message.
   */
  async send(
    conversation: number,
    text: string,
    options: { attachment?: Attachment; key?: string } = {},
  ): Promise<Sent> {
    await this.loaded;
    const entry: OutboxEntry = {
      key: options.key ?? crypto.randomUUID(),
      conversation_id: conversation,
      text,
      attachment: options.attachment ?? null,
    };
    this.#entries.set(entry.key, entry);
    await this.#outbox.put(entry);
    const answered = new Promise<Sent>((resolve, reject) => this.#waiting.set(entry.key, { resolve, reject }));
    this.#transmit(entry);
    return answered;
  }

  /** Sends waiting for an acknowledgement (or refused), oldest first. */
  pending(): OutboxEntry[] {
    return [...this.#entries.values()];
  }

  /** Sends a refused send again, under its key. */
  retry(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    entry.failed = null;
    void this.#outbox.put(entry);
    this.#transmit(entry);
  }

  /** Gives up a send that is waiting or was refused. */
  discard(key: string): void {
    if (!this.#entries.delete(key)) return;
    void this.#outbox.remove(key);
    this.#waiting.get(key)?.reject(new Error("discarded"));
    this.#waiting.delete(key);
  }

  /** False when not connected (nothing was sent). */
  typing(conversation: number, isTyping: boolean): boolean {
    return this.#send({ type: "typing", conversation_id: conversation, is_typing: isTyping });
  }

  /** False when not connected: the caller may mark it read over HTTP instead. */
  read(conversation: number, upTo: number): boolean {
    return this.#send({ type: "read", conversation_id: conversation, up_to: upTo });
  }

  /** Pings every `everyMs`, and gives a socket silent `stallMs` after one up. */
  setHeartbeat(everyMs: number, stallMs: number): void {
    this.#options.heartbeat = { everyMs, stallMs };
    if (this.#ready) this.#startHeartbeat();
  }

  /** Uploads a file for `conversation`; the answer goes into `send`'s `attachment`. */
  async upload(
    conversation: number,
    file: Blob,
    name: string,
    onProgress?: (sent: number, total: number) => void,
  ): Promise<Attachment> {
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
    if (response.status !== 201) throw problem(response.status, body);
    onProgress?.(file.size, file.size);
    return JSON.parse(body) as Attachment;
  }

  /**
   * The server's VAPID public key (base64url, an uncompressed P-256 point): the
   * `applicationServerKey` for `PushManager.subscribe`. `null` when the server sends no web
   * push (it answers 404), so a caller can say so instead of failing.
   */
  async pushPublicKey(): Promise<string | null> {
    const response = await this.#request("GET", "/v1/push/vapid-public-key");
    if (response.status === 404) return null;
    const body = await response.text();
    if (!response.ok) throw problem(response.status, body);
    return (JSON.parse(body) as { vapid_public_key: string }).vapid_public_key;
  }

  /**
   * Has the server push to this browser: `subscription` is `PushSubscription.toJSON()`.
   * Saving the same one again changes nothing, so a page may save it on every load.
   */
  async savePushSubscription(subscription: PushSubscriptionJSON): Promise<void> {
    const { endpoint, keys } = subscription;
    if (!endpoint || !keys?.p256dh || !keys.auth) {
      throw new Error("a push subscription needs an endpoint and its p256dh and auth keys");
    }
    // Only the fields the server takes: it refuses unknown ones, and toJSON() adds
    // expirationTime.
    const body = { endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } };
    const response = await this.#request("PUT", "/v1/push/subscriptions", body);
    if (response.status !== 204) throw problem(response.status, await response.text());
  }

  /** Stops pushes to `endpoint`; one the server does not know (404) is stopped already. */
  async deletePushSubscription(endpoint: string): Promise<void> {
    const response = await this.#request("DELETE", "/v1/push/subscriptions", { endpoint });
    if (response.status !== 204 && response.status !== 404) {
      throw problem(response.status, await response.text());
    }
  }

  /** Replaces the text of one of the caller's messages (within the server's edit window). */
  async editMessage(conversation: number, messageId: number, text: string): Promise<void> {
    const path = `/v1/conversations/${conversation}/messages/${messageId}`;
    const response = await this.#request("PATCH", path, { text });
    if (!response.ok) throw problem(response.status, await response.text());
  }

  /** Deletes one of the caller's messages for everyone; deleting it again is done already. */
  async deleteMessage(conversation: number, messageId: number): Promise<void> {
    const path = `/v1/conversations/${conversation}/messages/${messageId}`;
    const response = await this.#request("DELETE", path);
    if (response.status !== 204) throw problem(response.status, await response.text());
  }

  /** An HTTP request to the chat with the caller's token, as the other calls make. */
  async #request(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${await this.#options.token()}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    return fetch(`${this.#options.baseUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async #open(): Promise<void> {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    const token = await this.#options.token();
    const scheme = this.#options.baseUrl.replace(/^http/, "ws");
    const socket = new this.#WebSocket(`${scheme}/v1/ws?token=${encodeURIComponent(token)}`);
    this.#socket = socket;
    this.#emit("state", "connecting");
    socket.onmessage = (event) => {
      if (this.#socket !== socket) return;
      this.#lastHeard = Date.now();
      this.#receive(JSON.parse(String(event.data)) as ServerFrame);
    };
    socket.onclose = (event) => {
      this.#emit("closed", event.code);
      this.#lost(socket);
    };
    socket.onerror = () => socket.close();
  }

  #receive(frame: ServerFrame): void {
    switch (frame.type) {
      case "ready":
        this.#ready = true;
        this.#retries = 0;
        this.#startHeartbeat();
        this.#emit("state", "online");
        for (const [conversation, last] of this.#subscriptions) {
          this.#send({ type: "subscribe", conversation_id: conversation, since: last || null });
        }
        for (const entry of this.#entries.values()) this.#transmit(entry);
        break;
      case "message": {
        const message = frame.message;
        const last = this.#subscriptions.get(message.conversation_id);
        if (last !== undefined && message.id <= last) return; // delivered before a resume
        if (last !== undefined) this.#subscriptions.set(message.conversation_id, message.id);
        if (message.idempotency_key) this.#settle(message.idempotency_key, message.id, false);
        this.#emit("message", message);
        break;
      }
      case "message_changed": {
        // In log order, after every message before it: resuming from its position misses
        // nothing.
        const last = this.#subscriptions.get(frame.conversation_id);
        if (last !== undefined && frame.position <= last) return;
        if (last !== undefined) this.#subscriptions.set(frame.conversation_id, frame.position);
        this.#emit("change", frame);
        break;
      }
      case "ack":
        if (frame.ref && frame.message_id != null) this.#settle(frame.ref, frame.message_id, frame.duplicate ?? false);
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
  #settle(key: string, messageId: number, duplicate: boolean): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    void this.#outbox.remove(key);
    this.#waiting.get(key)?.resolve({ messageId, duplicate });
    this.#waiting.delete(key);
    this.#emit("sent", { key, conversationId: entry.conversation_id, messageId, duplicate });
  }

  #transmit(entry: OutboxEntry): void {
    if (entry.failed) return; // refused: sent again only when retried
    // The key doubles as the frame's ref, so an ack finds its entry after any reconnect.
    const frame: ClientFrame = {
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

  #send(frame: ClientFrame): boolean {
    if (this.#socket && this.#ready && this.#socket.readyState === this.#WebSocket.OPEN) {
      this.#socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  #startHeartbeat(): void {
    clearInterval(this.#heartbeat);
    const { everyMs, stallMs } = this.#options.heartbeat;
    this.#heartbeat = setInterval(() => {
      const socket = this.#socket;
      if (!socket || !this.#ready) return;
      const sent = Date.now();
      this.#refs += 1;
      this.#send({ type: "ping", ref: `hb${this.#refs}` });
      setTimeout(() => {
        if (this.#socket === socket && this.#lastHeard < sent) this.#lost(socket);
      }, stallMs);
    }, everyMs);
  }

  /** The socket ended or stalled: forget it and try again after a jittered backoff. */
  #lost(socket: WebSocket): void {
    if (this.#socket !== socket) return;
    this.#socket = null;
    this.#ready = false;
    clearInterval(this.#heartbeat);
    socket.onclose = null;
    socket.close();
    this.#emit("state", "offline");
    if (this.#closed) return;
    const { initialMs, maxMs } = this.#options.backoff;
    const delay = Math.min(maxMs, initialMs * 2 ** this.#retries) * (0.75 + Math.random() / 2);
    this.#retries += 1;
    this.#timer = setTimeout(() => void this.#open(), delay);
  }

  #emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const handler of this.#handlers.get(event) ?? []) (handler as Handler<Events[K]>)(value);
  }

  /** For tests: the socket stops carrying frames either way, without closing. */
  stallForTesting(): void {
    const socket = this.#socket;
    if (!socket) return;
    socket.onmessage = null;
    socket.send = () => undefined;
  }
}

function problem(status: number, body: string): Error {
  try {
    const parsed = JSON.parse(body) as { detail?: string };
    return new Error(`${status}: ${parsed.detail ?? body}`);
  } catch {
    return new Error(`${status}: ${body}`);
  }
}
