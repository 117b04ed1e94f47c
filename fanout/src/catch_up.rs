//! Catching up a subscription: everything after the client's position that it missed, in
//! order and once. What the hub no longer remembers comes from the store (after waiting for
//! the store's watermark to cover it), then what the hub remembers; the plan that says
//! which is which was taken together with the registration (`resume.rs`), so live messages
//! queued meanwhile continue exactly where the catch-up ends.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use schemas::native::close;
use schemas::{ConversationId, MessageId, UserId};
use tokio::time::Instant;
use viewstore::StoreError;

use crate::delivery::{MessageDelivery, change_frame};
use crate::metrics;
use crate::receipts::{CaughtUp, stored_receipts};
use crate::resume::ResumePlan;
use crate::session::{Close, Session};

/// The store failed under a resume: logged here, once, and the client told to retry.
fn unavailable(error: &StoreError) -> Close {
    tracing::error!(%error, "the store failed while catching up a subscription");
    Close::new(close::TRY_AGAIN_LATER, "the chat backend is unavailable; retry shortly")
}

impl Session {
    /// Registers the subscription and writes every message after `since` that the client
    /// missed, in order: first what only the store has, then what the hub remembers.
    pub(crate) async fn subscribe(
        &mut self,
        conversation: ConversationId,
        participants: [UserId; 2],
        since: Option<MessageId>,
        render: impl Fn(&MessageDelivery) -> Option<Utf8Bytes>,
    ) -> Result<CaughtUp, Close> {
        let subscriber = self.subscriber.clone();
        let plan = self.hub.subscribe(conversation, participants, subscriber, since);
        self.catch_up(conversation, since, plan, render).await
    }

    /// Writes what `plan` says the client missed since `since`, for a subscription already
    /// registered.
    pub(crate) async fn catch_up(
        &mut self,
        conversation: ConversationId,
        since: Option<MessageId>,
        plan: ResumePlan,
        render: impl Fn(&MessageDelivery) -> Option<Utf8Bytes>,
    ) -> Result<CaughtUp, Close> {
        let mut last = since.unwrap_or(MessageId::ZERO);
        let mut receipts = Vec::new();
        let mut changes = Vec::new();
        let mut missed = 0;
        let from_store = plan.from_store.is_some();
        if let Some(range) = plan.from_store {
            self.wait_for_store(range.partition, range.through_offset).await?;
            let read_model = Arc::clone(&self.read_model);
            let view = read_model.view(conversation).await.map_err(|e| unavailable(&e))?;
            if let Some(view) = &view {
                receipts.extend(stored_receipts(view, &range));
            }
            let stored = read_model
                .changes(conversation, range.after, range.before)
                .await
                .map_err(|e| unavailable(&e))?;
            changes.extend(stored.iter().map(change_frame));
            let page = self.hub.config().resume_page;
            loop {
                let messages = read_model
                    .messages(conversation, last, Some(range.before), page, false)
                    .await
                    .map_err(|e| unavailable(&e))?;
                for message in &messages {
                    let is_read = view.as_ref().is_some_and(|view| view.is_read(message));
                    let delivery = MessageDelivery::new(message.to_http(is_read));
                    if let Some(frame) = render(&delivery) {
                        self.send_text(frame).await?;
                    }
                    last = message.id;
                    missed += 1;
                }
                if messages.len() < page {
                    break;
                }
            }
        }
        for delivery in plan.recent {
            if delivery.id() > last {
                if let Some(frame) = render(&delivery) {
                    self.send_text(frame).await?;
                }
                last = delivery.id();
                missed += 1;
            }
        }
        if since.is_some() {
            metrics::resumed(from_store, missed);
        }
        receipts.extend(plan.receipts);
        changes.extend(plan.changes);
        Ok(CaughtUp { last, changes, receipts })
    }

    async fn wait_for_store(&mut self, partition: u32, through_offset: u64) -> Result<(), Close> {
        let deadline = Instant::now() + self.hub.config().resume_wait;
        loop {
            let marks = self
                .read_model
                .watermarks(self.hub.partitions())
                .await
                .map_err(|e| unavailable(&e))?;
            if marks
                .get(partition as usize)
                .copied()
                .flatten()
                .is_some_and(|mark| mark >= through_offset)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Close::new(
                    close::TRY_AGAIN_LATER,
                    "history is catching up; retry shortly",
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
