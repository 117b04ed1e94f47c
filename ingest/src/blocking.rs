//! Blocking a conversation: a participant's block is an event on the log, projected into the
//! conversation's view, and while it stands the other participant's sends are refused.
//!
//! A send asks the projections whether the conversation is blocked, through a cache
//! (`block_cache.rs`) that keeps each answer for a second: a block made on another node is
//! enforced here within that time plus the projector's lag. The node that takes a block
//! answers only once the projections show it, and updates its own cache at once, so the
//! blocker's "blocked" holds from the moment they see it on this node.

use std::time::{Duration, Instant};

use auth::Caller;
use schemas::UserId;
use schemas::http::Conversation;
use schemas::{ChatEvent, ConversationBlocked, ConversationId, ConversationUnblocked, Timestamp};

use crate::error::IngestError;
use crate::service::Ingest;

/// How long a block waits for the projections to show it before answering anyway.
const SHOWN_WITHIN: Duration = Duration::from_secs(5);

impl Ingest {
    /// Refuses a send by `caller` while the other participant's block stands.
    pub(crate) async fn check_not_blocked(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<(), IngestError> {
        let blockers = match self.blocks.fresh(conversation) {
            Some(blockers) => blockers,
            None => {
                let view = self.read_model.view(conversation).await?;
                let blockers = view.map(|view| view.blocked_by).unwrap_or_default();
                self.blocks.put(conversation, blockers.clone());
                blockers
            }
        };
        if blockers.iter().any(|blocker| *blocker != caller.user_id) {
            return Err(IngestError::Blocked(
                "the other participant blocked this conversation".into(),
            ));
        }
        Ok(())
    }

    /// `PUT` (`blocked`) or `DELETE /v1/conversations/{id}/block`: the caller's block stands
    /// or is lifted. Answers the conversation as the caller sees it, once the projections
    /// show the change (or after five seconds, the change being durable either way).
    pub async fn set_blocked(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        blocked: bool,
    ) -> Result<Conversation, IngestError> {
        let record = self.authorize(caller, conversation).await?;
        let answer_with = |blockers: &[UserId]| {
            let mut answer = record.to_http();
            answer.blocked = !blockers.is_empty();
            answer.blocked_by = blockers.contains(&caller.user_id).then(|| caller.user_id.clone());
            answer
        };
        // Blocking twice, or lifting a block one does not hold, changes nothing.
        if let Some(view) = self.read_model.view(conversation).await?
            && view.blocked_by.contains(&caller.user_id) == blocked
        {
            return Ok(answer_with(&view.blocked_by));
        }
        let now = Timestamp::now();
        let event = if blocked {
            ChatEvent::ConversationBlocked(ConversationBlocked {
                conversation_id: conversation,
                blocker_id: caller.user_id.clone(),
                blocked_at: now,
            })
        } else {
            ChatEvent::ConversationUnblocked(ConversationUnblocked {
                conversation_id: conversation,
                unblocker_id: caller.user_id.clone(),
                unblocked_at: now,
            })
        };
        let written = self.publish(&event, None).await?.id();
        let offset = written.position().map_or(0, |position| position.offset);
        let deadline = Instant::now() + SHOWN_WITHIN;
        let mut blockers = None;
        while Instant::now() < deadline {
            if let Some(view) = self.read_model.view(conversation).await?
                && view.applied_offset >= offset
            {
                blockers = Some(view.blocked_by);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Not shown in time (a lagging projector): what this caller asked for is what the
        // log will say about them.
        let blockers = blockers
            .unwrap_or_else(|| if blocked { vec![caller.user_id.clone()] } else { Vec::new() });
        self.blocks.put(conversation, blockers.clone());
        Ok(answer_with(&blockers))
    }

    /// The conversation as `caller` sees it, with whether it is blocked.
    pub async fn conversation_for(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<Conversation, IngestError> {
        let record = self.authorize(caller, conversation).await?;
        let mut answer = record.to_http();
        if let Some(view) = self.read_model.view(conversation).await? {
            (answer.blocked, answer.blocked_by) = view.blocked_for(&caller.user_id);
        }
        Ok(answer)
    }
}
