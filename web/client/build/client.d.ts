import type { Attachment, Message, ServerFrame } from "./generated/server-frame.js";
import { type OutboxEntry, type OutboxStore } from "./outbox.js";
export interface ChatClientOptions {
    /** `http(s)://host:port` of the chat; the socket goes to its `/v1/ws`. */
    baseUrl: string;
    /** The caller's JWT; asked again before every connection, so it may be refreshed. */
    token: () => string | Promise<string>;
    /** Where unsent messages wait (default: memory only; `indexedDbOutbox` in browsers). */
    outbox?: OutboxStore;
    /** A ping this often, and a socket silent this long after one is given up. */
    heartbeat?: {
        everyMs: number;
        stallMs: number;
    };
    /** Reconnect delays: `initialMs` doubling up to `maxMs`, each with ±25 % jitter. */
    backoff?: {
        initialMs: number;
        maxMs: number;
    };
    /** A WebSocket constructor (default: the global one). */
    WebSocket?: typeof WebSocket;
}
/** What a send resolves with once the log holds the message. */
export interface Sent {
    messageId: number;
    duplicate: boolean;
}
/** A message already delivered changed: apply `change` to it (applying it twice is harmless). */
export type MessageChanged = Extract<ServerFrame, {
    type: "message_changed";
}>;
type Events = {
    message: Message;
    /** Comes after the message it changes, in the log's order. */
    change: MessageChanged;
    frame: ServerFrame;
    state: "connecting" | "online" | "offline";
    /** The socket closed with this code (4401: the token is no longer accepted). */
    closed: number;
    /** A send left the outbox: the log holds it as `messageId`. */
    sent: {
        key: string;
        conversationId: number;
        messageId: number;
        duplicate: boolean;
    };
    /** The server refused a send; it stays in the outbox, unsent, for `retry` or `discard`. */
    failed: {
        key: string;
        detail: string;
    };
};
type Handler<T> = (value: T) => void;
export declare class ChatClient {
    #private;
    /** Resolves once the outbox's entries are loaded (`pending` lists them from then on). */
    readonly loaded: Promise<void>;
    constructor(options: ChatClientOptions);
    on<K extends keyof Events>(event: K, handler: Handler<Events[K]>): () => void;
    /** Opens the connection (and keeps it open until `close`). */
    connect(): Promise<void>;
    /** Gives the socket up now (the browser said the network went) and reconnects. */
    reconnect(): void;
    close(): void;
    /** Follows `conversation`, with every message after `since` delivered first. */
    subscribe(conversation: number, since?: number): void;
    unsubscribe(conversation: number): void;
    /**
     * Sends a message; resolves once the log holds it. It waits in the outbox until then,
     * across reconnections (and across page loads with a persistent outbox); `key` makes
     * every retry the same message.
     */
    send(conversation: number, text: string, options?: {
        attachment?: Attachment;
        key?: string;
    }): Promise<Sent>;
    /** Sends waiting for an acknowledgement (or refused), oldest first. */
    pending(): OutboxEntry[];
    /** Sends a refused send again, under its key. */
    retry(key: string): void;
    /** Gives up a send that is waiting or was refused. */
    discard(key: string): void;
    /** False when not connected (nothing was sent). */
    typing(conversation: number, isTyping: boolean): boolean;
    /** False when not connected: the caller may mark it read over HTTP instead. */
    read(conversation: number, upTo: number): boolean;
    /** Pings every `everyMs`, and gives a socket silent `stallMs` after one up. */
    setHeartbeat(everyMs: number, stallMs: number): void;
    /** Uploads a file for `conversation`; the answer goes into `send`'s `attachment`. */
    upload(conversation: number, file: Blob, name: string, onProgress?: (sent: number, total: number) => void): Promise<Attachment>;
    /**
     * The server's VAPID public key (base64url, an uncompressed P-256 point): the
     * `applicationServerKey` for `PushManager.subscribe`. `null` when the server sends no web
     * push (it answers 404), so a caller can say so instead of failing.
     */
    pushPublicKey(): Promise<string | null>;
    /**
     * Has the server push to this browser: `subscription` is `PushSubscription.toJSON()`.
     * Saving the same one again changes nothing, so a page may save it on every load.
     */
    savePushSubscription(subscription: PushSubscriptionJSON): Promise<void>;
    /** Stops pushes to `endpoint`; one the server does not know (404) is stopped already. */
    deletePushSubscription(endpoint: string): Promise<void>;
    /** Replaces the text of one of the caller's messages (within the server's edit window). */
    editMessage(conversation: number, messageId: number, text: string): Promise<void>;
    /** Deletes one of the caller's messages for everyone; deleting it again is done already. */
    deleteMessage(conversation: number, messageId: number): Promise<void>;
    /** For tests: the socket stops carrying frames either way, without closing. */
    stallForTesting(): void;
}
export {};
