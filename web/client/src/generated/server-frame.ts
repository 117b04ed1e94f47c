// Generated from schemas/generated/ws by scripts/generate-types.mjs; do not edit.

/**
 * Frames the server sends.
 */
export type ServerFrame =
  | {
      name: string;
      type: "ready";
      user_id: UserId;
    }
  | {
      conversation_id: ConversationId;
      type: "subscribed";
    }
  | {
      conversation_id: ConversationId;
      type: "unsubscribed";
    }
  | {
      conversation_id: ConversationId;
      message: Message;
      type: "message";
    }
  | {
      change: MessageChange;
      conversation_id: ConversationId;
      message_id: MessageId;
      position: MessageId;
      type: "message_changed";
    }
  | {
      conversation_id: ConversationId;
      /**
       * (offset + 1) * 1024 + partition of the message's log record; increases in log order within a conversation
       */
      position: number;
      read_at: Timestamp;
      reader_id: UserId;
      type: "read";
      up_to: MessageId;
    }
  | {
      conversation_id: ConversationId;
      is_typing: boolean;
      type: "typing";
      user_id: UserId;
    }
  | {
      at: Timestamp;
      conversation_id: ConversationId;
      status: PresenceStatus;
      type: "presence";
      user_id: UserId;
    }
  | {
      item: InboxItem;
      type: "inbox";
    }
  | {
      duplicate?: boolean;
      message_id?: MessageId | null;
      ref?: string | null;
      type: "ack";
      up_to?: MessageId | null;
    }
  | {
      ref?: string | null;
      type: "pong";
    }
  | {
      code: ErrorCode;
      detail: string;
      ref?: string | null;
      type: "error";
    };
/**
 * The `sub` claim of the user's token
 */
export type UserId = string;
/**
 * A conversation; one per job
 */
export type ConversationId = number;
/**
 * RFC 3339 instant in UTC, millisecond precision
 */
export type Timestamp = string;
/**
 * (offset + 1) * 1024 + partition of the message's log record; increases in log order within a conversation
 */
export type MessageId = number;
/**
 * What kind of message it is; IMAGE and FILE carry an attachment, SYSTEM comes from the
 * jobs system (service role) rather than from a participant.
 */
export type MessageType = "TEXT" | "IMAGE" | "FILE" | "SYSTEM";
/**
 * What changed in a message: the new state of what the change touches.
 */
export type MessageChange =
  | {
      edited_at: Timestamp;
      kind: "edited";
      text: string;
    }
  | {
      deleted_at: Timestamp;
      kind: "deleted";
    };
export type PresenceStatus = "online" | "offline";
/**
 * Why a request failed; shared by HTTP problem types (`urn:chat:problem:<code>`), native
 * error frames and seed error frames.
 */
export type ErrorCode =
  | ("not_found" | "internal")
  | "invalid_json"
  | "invalid_input"
  | "unauthenticated"
  | "forbidden"
  | "conflict"
  | "too_large"
  | "unsupported_type"
  | "rate_limited"
  | "quota_exceeded"
  | "blocked"
  | "unavailable";

/**
 * A message as history and the native WebSocket API show it.
 */
export interface Message {
  attachment?: Attachment | null;
  conversation_id: ConversationId;
  /**
   * True for a message deleted for everyone: a tombstone with no text and no attachment.
   */
  deleted?: boolean;
  /**
   * When its sender last edited it; absent if never.
   */
  edited_at?: Timestamp | null;
  id: MessageId;
  idempotency_key?: string | null;
  /**
   * Whether every recipient has read it (as far as the projection knows).
   */
  is_read: boolean;
  message_type: MessageType;
  sender_id: UserId;
  sender_name: string;
  sent_at: Timestamp;
  text: string;
}
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
/**
 * One conversation in a user's inbox.
 */
export interface InboxItem {
  /**
   * A participant blocked the conversation: the other side can send nothing.
   */
  blocked?: boolean;
  /**
   * The caller, when it is the caller's block (absent otherwise).
   */
  blocked_by?: UserId | null;
  client: Participant;
  conversation_id: ConversationId;
  job_id: string;
  /**
   * Last message time, or the start of the conversation before any message.
   */
  last_activity_at: string;
  last_message_at?: Timestamp | null;
  last_message_id?: MessageId | null;
  last_message_sender_id?: UserId | null;
  /**
   * A preview: the first 120 characters of the last message.
   */
  last_message_text?: string | null;
  last_read_id: MessageId;
  /**
   * Messages from others after this user's read mark.
   */
  unread_count: number;
  /**
   * Grows with every change to this item; keep the item with the highest version.
   */
  version: number;
  worker: Participant;
}
/**
 * A person in a conversation, with the display name they had when the event was written.
 */
export interface Participant {
  id: UserId;
  name: string;
}
