//! The conversation directory on CQL: lightweight transactions for every compare-and-set.

use std::time::Duration;

use async_trait::async_trait;
use schemas::{ConversationId, MessageId, Participant, Timestamp, UserId};
use scylla::response::query_result::QueryResult;
use scylla::value::{CqlTimestamp, CqlValue, Row};

use super::{CqlStore, unavailable};
use crate::model::{ConversationRecord, KeyClaim};
use crate::{ConversationDirectory, StoreError};

/// Whether a lightweight transaction was applied (its first column, `[applied]`).
fn applied(result: QueryResult) -> Result<bool, StoreError> {
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

    async fn key_state(
        &self,
        conversation: ConversationId,
        key: &str,
        now: Timestamp,
        stale_after: Duration,
    ) -> Result<Option<KeyClaim>, StoreError> {
        let result = self
            .shared
            .session
            .execute_unpaged(&self.shared.statements.key_get, (id_i64(conversation.get()), key))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let row = result
            .maybe_first_row::<(Option<String>, Option<CqlTimestamp>, Option<i64>)>()
            .map_err(unavailable)?;
        let Some((owner, claimed_at, message)) = row else {
            return Ok(None);
        };
        if let Some(message) = message {
            let id = u64::try_from(message).ok().and_then(|id| MessageId::new(id).ok());
            return id.map(|id| Some(KeyClaim::Completed(id))).ok_or_else(|| corrupt("message id"));
        }
        let age = now.millis().saturating_sub(claimed_at.map_or(0, |at| at.0));
        let stale = u128::try_from(age).unwrap_or(0) >= stale_after.as_millis();
        Ok(Some(KeyClaim::Pending { owner: owner.unwrap_or_default(), stale }))
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

    async fn claim_key(
        &self,
        conversation: ConversationId,
        key: &str,
        owner: &str,
        now: Timestamp,
        stale_after: Duration,
    ) -> Result<KeyClaim, StoreError> {
        let values = (id_i64(conversation.get()), key, owner, CqlTimestamp(now.millis()));
        let result = self
            .shared
            .session
            .execute_unpaged(&self.shared.statements.key_claim, values)
            .await
            .map_err(unavailable)?;
        if applied(result)? {
            return Ok(KeyClaim::Claimed);
        }
        // Lost to an existing claim: report it (read at serial consistency by default).
        Ok(self
            .key_state(conversation, key, now, stale_after)
            .await?
            .unwrap_or(KeyClaim::Pending { owner: String::new(), stale: false }))
    }

    async fn take_over_key(
        &self,
        conversation: ConversationId,
        key: &str,
        stale_owner: &str,
        owner: &str,
        now: Timestamp,
    ) -> Result<KeyClaim, StoreError> {
        let values =
            (owner, CqlTimestamp(now.millis()), id_i64(conversation.get()), key, stale_owner);
        let result = self
            .shared
            .session
            .execute_unpaged(&self.shared.statements.key_take_over, values)
            .await
            .map_err(unavailable)?;
        if applied(result)? {
            return Ok(KeyClaim::Claimed);
        }
        Ok(self
            .key_state(conversation, key, now, Duration::MAX)
            .await?
            .unwrap_or(KeyClaim::Pending { owner: String::new(), stale: true }))
    }

    async fn complete_key(
        &self,
        conversation: ConversationId,
        key: &str,
        message: MessageId,
    ) -> Result<MessageId, StoreError> {
        let (session, statements) = (&self.shared.session, &self.shared.statements);
        let (conversation_value, mine) = (id_i64(conversation.get()), id_i64(message.get()));
        for _ in 0..16 {
            let state = self.key_state(conversation, key, Timestamp::now(), Duration::MAX).await?;
            let result = match state {
                None => {
                    session
                        .execute_unpaged(
                            &statements.key_insert_completed,
                            (conversation_value, key, mine),
                        )
                        .await
                }
                Some(KeyClaim::Completed(standing)) if standing <= message => return Ok(standing),
                Some(KeyClaim::Completed(standing)) => {
                    let values = (mine, conversation_value, key, id_i64(standing.get()));
                    session.execute_unpaged(&statements.key_complete_lower, values).await
                }
                Some(_) => {
                    session
                        .execute_unpaged(
                            &statements.key_complete_unset,
                            (mine, conversation_value, key),
                        )
                        .await
                }
            };
            if applied(result.map_err(unavailable)?)? {
                return Ok(message);
            }
        }
        Err(StoreError::Unavailable(format!("idempotency key {key:?} kept changing; retry")))
    }
}
