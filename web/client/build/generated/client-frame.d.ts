/**
 * Frames a client sends. Unknown members are refused so a typo is an error frame, not a
 * silently ignored option.
 */
export type ClientFrame = {
    conversation_id: ConversationId;
    since?: MessageId | null;
    type: "subscribe";
} | {
    conversation_id: ConversationId;
    type: "unsubscribe";
} | {
    attachment?: Attachment | null;
    conversation_id: ConversationId;
    idempotency_key?: string | null;
    /**
     * What kind of message it is; IMAGE and FILE carry an attachment, SYSTEM comes from the
     * jobs system (service role) rather than from a participant.
     */
    message_type?: "TEXT" | "IMAGE" | "FILE" | "SYSTEM";
    ref?: string | null;
    text?: string;
    type: "send";
} | {
    conversation_id: ConversationId;
    ref?: string | null;
    type: "read";
    up_to: MessageId;
} | {
    conversation_id: ConversationId;
    is_typing: boolean;
    type: "typing";
} | {
    ref?: string | null;
    type: "ping";
};
/**
 * A conversation; one per job
 */
export type ConversationId = number;
/**
 * (offset + 1) * 1024 + partition of the message's log record; increases in log order within a conversation
 */
export type MessageId = number;
/**
 * A file that lives in object storage; the chat carries its description, not its bytes.
 */
export interface Attachment {
    height?: number | null;
    /**
     * MIME type, e.g. `image/png`; for an upload, sniffed from its bytes.
     */
    mime_type: string;
    /**
     * File name shown to people.
     */
    name: string;
    /**
     * Size in bytes, when the uploader knew it (always, for an upload).
     */
    size?: number | null;
    /**
     * A small rendition of an image (at most 320 pixels on its longer side).
     */
    thumbnail_url?: string | null;
    /**
     * The id an upload to this server answered with. When set, the server describes the
     * file from what it stored (every other field here is replaced).
     */
    upload_id?: string | null;
    /**
     * Where the file is: an http(s) URL, or for a file uploaded to this server its path
     * here (`/v1/conversations/{id}/attachments/{upload_id}`, participants only).
     */
    url: string;
    /**
     * Pixel dimensions of an image.
     */
    width?: number | null;
}
