//! The embedded store's SQLite schema, one numbered step at a time.

use embedded_sqlite::Migration;

/// The store's schema, one numbered step at a time (`embedded_sqlite::migrate`).
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "directory, leases and projections",
        sql: "
    CREATE TABLE IF NOT EXISTS conversations (
        conversation_id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id          TEXT    NOT NULL UNIQUE,
        client_id       TEXT    NOT NULL,
        client_name     TEXT    NOT NULL,
        worker_id       TEXT    NOT NULL,
        worker_name     TEXT    NOT NULL,
        created_at      INTEGER NOT NULL,
        started         INTEGER NOT NULL DEFAULT 0
    );
    DROP TABLE IF EXISTS idempotency_keys;
    CREATE TABLE IF NOT EXISTS writer_leases (
        partition INTEGER PRIMARY KEY,
        node      TEXT    NOT NULL,
        address   TEXT    NOT NULL,
        version   INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS views (
        conversation_id INTEGER PRIMARY KEY,
        applied_offset  INTEGER NOT NULL,
        body            TEXT    NOT NULL
    );
    CREATE TABLE IF NOT EXISTS inbox (
        user_id         TEXT    NOT NULL,
        conversation_id INTEGER NOT NULL,
        last_activity   INTEGER NOT NULL,
        PRIMARY KEY (user_id, conversation_id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS inbox_by_activity
        ON inbox (user_id, last_activity DESC, conversation_id DESC);
    CREATE TABLE IF NOT EXISTS messages (
        conversation_id INTEGER NOT NULL,
        message_id      INTEGER NOT NULL,
        idempotency_key TEXT,
        body            TEXT    NOT NULL,
        PRIMARY KEY (conversation_id, message_id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS messages_by_key
        ON messages (conversation_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE TABLE IF NOT EXISTS watermarks (
        partition INTEGER PRIMARY KEY,
        offset    INTEGER NOT NULL
    );
",
    },
    Migration {
        version: 2,
        name: "push subscriptions",
        sql: "
    CREATE TABLE IF NOT EXISTS push_subscriptions (
        endpoint      TEXT PRIMARY KEY,
        user_id       TEXT NOT NULL,
        p256dh        TEXT NOT NULL,
        auth          TEXT NOT NULL,
        registered_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS push_subscriptions_by_user
        ON push_subscriptions (user_id, registered_at);
",
    },
    Migration {
        version: 3,
        name: "message changes",
        sql: "
    ALTER TABLE messages ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE IF NOT EXISTS message_changes (
        conversation_id INTEGER NOT NULL,
        position        INTEGER NOT NULL,
        body            TEXT    NOT NULL,
        PRIMARY KEY (conversation_id, position)
    ) WITHOUT ROWID;
",
    },
];
