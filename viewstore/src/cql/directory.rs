//! The conversation directory on CQL: lightweight transactions for every compare-and-set.

use async_trait::async_trait;
use schemas::{ConversationId, Participant, Timestamp, UserId};
use scylla::response::query_result::QueryResult;
use scylla::value::{CqlTimestamp, CqlValue, Row};

use super::{CqlStore, unavailable};
use crate::model::ConversationRecord;
use crate::{ConversationDirectory, StoreError};

/// Whether a lightweight transaction was applied (its first column, `[applied]`).
pub(super) fn applied(result: QueryResult) -> Result<bool, StoreError> {
    let rows = result.into_rows_result().map_err(unavailable)?;
    let first = rows.maybe_first_row::<Row>().map_err(unavailable)?;
    Ok(matches!(
        first.and_then(|row| row.columns.into_iter().next()),
        Some(Some(CqlValue::Boolean(true)))
    ))
}

fn id_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(format!("stored {what} is not valid"))
}

/// A random conversation id below 2^53, from the operating system's generator.
fn random_conversation_id() -> ConversationId {
    loop {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let mut value = [0_u8; 8];
        value.copy_from_slice(&bytes[..8]);
        let candidate = u64::from_le_bytes(value) & schemas::ids::MAX_SAFE_INTEGER;
        if let Ok(id) = ConversationId::new(candidate) {
            return id;
        }
    }
}

type ConversationRow = (i64, String, String, String, String, String, CqlTimestamp, Option<bool>);

fn record_from(row: ConversationRow) -> Result<ConversationRecord, StoreError> {
    let (id, job_id, client_id, client_name, worker_id, worker_name, created_at, started) = row;
    Ok(ConversationRecord {
        conversation_id: ConversationId::new(u64::try_from(id).map_err(|_| corrupt("id"))?)
            .map_err(|_| corrupt("id"))?,
        job_id,
        client: Participant {
            id: UserId::new(client_id).map_err(|_| corrupt("user"))?,
            name: client_name,
        },
        worker: Participant {
            id: UserId::new(worker_id).map_err(|_| corrupt("user"))?,
            name: worker_name,
        },
        created_at: Timestamp::from_millis(created_at.0),
        started: started.unwrap_or(false),
    })
}

impl CqlStore {
    async fn conversation_by_id(&self, id: i64) -> Result<Option<ConversationRecord>, StoreError> {
        let result = self
            .shared
            .session
            .execute_unpaged(&self.shared.statements.conversation_get, (id,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let row = result.maybe_first_row::<ConversationRow>().map_err(unavailable)?;
        row.map(record_from).transpose()
    }
}

#[async_trait]
impl ConversationDirectory for CqlStore {
    async fn open_conversation(
        &self,
        job_id: &str,
        client: Participant,
        worker: Participant,
        now: Timestamp,
    ) -> Result<(ConversationRecord, bool), StoreError> {
        let statements = &self.shared.statements;
        let session = &self.shared.session;
        loop {
            let existing = session
                .execute_unpaged(&statements.job_lookup, (job_id,))
                .await
                .map_err(unavailable)?
                .into_rows_result()
                .map_err(unavailable)?
                .maybe_first_row::<(i64,)>()
                .map_err(unavailable)?;
            if let Some((id,)) = existing {
                // The winner writes its conversation row before claiming the job.
                let record =
                    self.conversation_by_id(id).await?.ok_or_else(|| corrupt("conversation"))?;
                return Ok((record, false));
            }
            let id = random_conversation_id();
            let row = (
                id_i64(id.get()),
                job_id,
                client.id.as_str(),
                client.name.as_str(),
                worker.id.as_str(),
                worker.name.as_str(),
                CqlTimestamp(now.millis()),
            );
            let inserted = session
                .execute_unpaged(&statements.conversation_insert, row)
                .await
                .map_err(unavailable)?;
            if !applied(inserted)? {
                continue; // an id collision: draw again
            }
            let claimed = session
                .execute_unpaged(&statements.job_claim, (job_id, id_i64(id.get())))
                .await
                .map_err(unavailable)?;
            if applied(claimed)? {
                let record = ConversationRecord {
                    conversation_id: id,
                    job_id: job_id.to_owned(),
                    client,
                    worker,
                    created_at: now,
                    started: false,
                };
                return Ok((record, true));
            }
            // Another caller claimed the job first: drop our row, answer with theirs.
            session
                .execute_unpaged(&statements.conversation_delete, (id_i64(id.get()), job_id))
                .await
                .map_err(unavailable)?;
        }
    }

    async fn mark_started(&self, conversation: ConversationId) -> Result<(), StoreError> {
        self.shared
            .session
            .execute_unpaged(
                &self.shared.statements.conversation_started,
                (id_i64(conversation.get()),),
            )
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn conversation(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ConversationRecord>, StoreError> {
        self.conversation_by_id(id_i64(conversation.get())).await
    }
}
