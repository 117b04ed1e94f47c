//! Every statement the store runs, prepared once at connect.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::push::PushStatements;
use super::unavailable;
use crate::StoreError;

#[derive(Debug)]
pub(crate) struct Statements {
    pub job_lookup: PreparedStatement,
    pub job_claim: PreparedStatement,
    pub conversation_get: PreparedStatement,
    pub conversation_insert: PreparedStatement,
    pub conversation_delete: PreparedStatement,
    pub conversation_started: PreparedStatement,
    pub view_get: PreparedStatement,
    pub view_put: PreparedStatement,
    pub inbox_page: PreparedStatement,
    pub inbox_page_after: PreparedStatement,
    pub inbox_put: PreparedStatement,
    pub inbox_delete: PreparedStatement,
    pub inbox_position_get: PreparedStatement,
    pub inbox_position_put: PreparedStatement,
    pub message_put: PreparedStatement,
    pub message_range: PreparedStatement,
    pub change_put: PreparedStatement,
    pub change_range: PreparedStatement,
    pub index_put: PreparedStatement,
    pub index_ascending: PreparedStatement,
    pub index_descending: PreparedStatement,
    pub index_at: PreparedStatement,
    pub key_message_put: PreparedStatement,
    pub key_message_get: PreparedStatement,
    pub key_messages_get: PreparedStatement,
    pub watermark_put: PreparedStatement,
    pub watermarks: PreparedStatement,
    pub leases_all: PreparedStatement,
    pub lease_insert: PreparedStatement,
    pub lease_replace: PreparedStatement,
    pub push: PushStatements,
}

impl Statements {
    pub(crate) async fn prepare(session: &Session, ks: &str) -> Result<Self, StoreError> {
        let prepare = async |text: String| session.prepare(text).await.map_err(unavailable);
        Ok(Self {
            job_lookup: prepare(format!(
                "SELECT conversation_id FROM {ks}.conversations_by_job WHERE job_id = ?"
            ))
            .await?,
            job_claim: prepare(format!(
                "INSERT INTO {ks}.conversations_by_job (job_id, conversation_id) VALUES (?, ?)
                 IF NOT EXISTS"
            ))
            .await?,
            conversation_get: prepare(format!(
                "SELECT conversation_id, job_id, client_id, client_name, worker_id, worker_name,
                        created_at, started
                 FROM {ks}.conversations WHERE conversation_id = ?"
            ))
            .await?,
            conversation_insert: prepare(format!(
                "INSERT INTO {ks}.conversations (conversation_id, job_id, client_id, client_name,
                     worker_id, worker_name, created_at, started)
                 VALUES (?, ?, ?, ?, ?, ?, ?, false) IF NOT EXISTS"
            ))
            .await?,
            conversation_delete: prepare(format!(
                "DELETE FROM {ks}.conversations WHERE conversation_id = ? IF job_id = ?"
            ))
            .await?,
            conversation_started: prepare(format!(
                "UPDATE {ks}.conversations SET started = true WHERE conversation_id = ?"
            ))
            .await?,
            view_get: prepare(format!("SELECT body FROM {ks}.views WHERE conversation_id = ?")).await?,
            view_put: prepare(format!(
                "INSERT INTO {ks}.views (conversation_id, applied_offset, body) VALUES (?, ?, ?)
                 USING TIMESTAMP ?"
            ))
            .await?,
            inbox_page: prepare(format!(
                "SELECT conversation_id FROM {ks}.inbox WHERE user_id = ? LIMIT ?"
            ))
            .await?,
            inbox_page_after: prepare(format!(
                "SELECT conversation_id FROM {ks}.inbox
                 WHERE user_id = ? AND (last_activity, conversation_id) < (?, ?) LIMIT ?"
            ))
            .await?,
            inbox_put: prepare(format!(
                "INSERT INTO {ks}.inbox (user_id, last_activity, conversation_id) VALUES (?, ?, ?)
                 USING TIMESTAMP ?"
            ))
            .await?,
            inbox_delete: prepare(format!(
                "DELETE FROM {ks}.inbox USING TIMESTAMP ?
                 WHERE user_id = ? AND last_activity = ? AND conversation_id = ?"
            ))
            .await?,
            inbox_position_get: prepare(format!(
                "SELECT last_activity FROM {ks}.inbox_positions WHERE user_id = ? AND conversation_id = ?"
            ))
            .await?,
            inbox_position_put: prepare(format!(
                "INSERT INTO {ks}.inbox_positions (user_id, conversation_id, last_activity)
                 VALUES (?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            message_put: prepare(format!(
                "INSERT INTO {ks}.messages (conversation_id, bucket, message_id, body)
                 VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            change_put: prepare(format!(
                "INSERT INTO {ks}.message_changes (conversation_id, position, body)
                 VALUES (?, ?, ?)"
            ))
            .await?,
            change_range: prepare(format!(
                "SELECT body FROM {ks}.message_changes WHERE conversation_id = ?
                 AND position > ? AND position < ?"
            ))
            .await?,
            message_range: prepare(format!(
                "SELECT body FROM {ks}.messages WHERE conversation_id = ? AND bucket = ?
                 AND message_id >= ? AND message_id <= ?"
            ))
            .await?,
            index_put: prepare(format!(
                "INSERT INTO {ks}.message_index (conversation_id, message_id, total, by_client, by_worker)
                 VALUES (?, ?, ?, ?, ?)"
            ))
            .await?,
            index_ascending: prepare(format!(
                "SELECT message_id, total FROM {ks}.message_index
                 WHERE conversation_id = ? AND message_id > ? AND message_id < ?
                 ORDER BY message_id ASC LIMIT ?"
            ))
            .await?,
            index_descending: prepare(format!(
                "SELECT message_id, total FROM {ks}.message_index
                 WHERE conversation_id = ? AND message_id > ? AND message_id < ?
                 ORDER BY message_id DESC LIMIT ?"
            ))
            .await?,
            index_at: prepare(format!(
                "SELECT message_id, total, by_client, by_worker FROM {ks}.message_index
                 WHERE conversation_id = ? AND message_id <= ? ORDER BY message_id DESC LIMIT 1"
            ))
            .await?,
            key_message_put: prepare(format!(
                "INSERT INTO {ks}.message_keys (conversation_id, key, message_id) VALUES (?, ?, ?)
                 USING TIMESTAMP ?"
            ))
            .await?,
            key_message_get: prepare(format!(
                "SELECT message_id FROM {ks}.message_keys WHERE conversation_id = ? AND key = ?"
            ))
            .await?,
            key_messages_get: prepare(format!(
                "SELECT key, message_id FROM {ks}.message_keys
                 WHERE conversation_id = ? AND key IN ?"
            ))
            .await?,
            watermark_put: prepare(format!(
                "INSERT INTO {ks}.watermarks (partition, offset) VALUES (?, ?) USING TIMESTAMP ?"
            ))
            .await?,
            watermarks: prepare(format!("SELECT partition, offset FROM {ks}.watermarks")).await?,
            leases_all: prepare(format!(
                "SELECT partition, node, address, version FROM {ks}.partition_writers"
            ))
            .await?,
            lease_insert: prepare(format!(
                "INSERT INTO {ks}.partition_writers (partition, node, address, version)
                 VALUES (?, ?, ?, ?) IF NOT EXISTS"
            ))
            .await?,
            lease_replace: prepare(format!(
                "UPDATE {ks}.partition_writers SET node = ?, address = ?, version = ?
                 WHERE partition = ? IF node = ? AND version = ?"
            ))
            .await?,
            push: PushStatements::prepare(session, ks).await?,
        })
    }
}
