//! The seed's protocol on `/ws/chat/{conversation_id}/`: one conversation per connection,
//! `{"message","type"}` in, `{"type":"message","message":{...}}` out, for everyone in the
//! conversation, the sender included. `?since=<id>` replays what the client missed first.

use axum::extract::ws::Utf8Bytes;
use ingest::{IngestError, MessageDraft};
use schemas::native::{ErrorCode, close};
use schemas::seed::{SeedErrorFrame, SeedInbound};
use schemas::{Attachment, ConversationId, MessageId, MessageType};

use crate::delivery::{Outbound, render};
use crate::resume::ResumePlan;
use crate::send_task::{Submission, Submitted};
use crate::session::{Close, Protocol, Session};

#[derive(Debug)]
pub(crate) struct SeedProtocol {
    conversation: ConversationId,
    since: Option<MessageId>,
    /// What to catch up on, from the subscription registered before the upgrade.
    plan: Option<ResumePlan>,
    last_delivered: MessageId,
}

impl SeedProtocol {
    /// `plan` comes from registering the subscription before the WebSocket upgrade, so the
    /// connection is live the moment the client sees it open.
    pub(crate) fn new(
        conversation: ConversationId,
        since: Option<MessageId>,
        plan: ResumePlan,
    ) -> Self {
        Self {
            conversation,
            since,
            plan: Some(plan),
            last_delivered: since.unwrap_or(MessageId::ZERO),
        }
    }

    /// Writes what the client missed (if it gave `since`).
    pub(crate) async fn start(&mut self, session: &mut Session) -> Result<(), Close> {
        let Some(plan) = self.plan.take() else {
            return Ok(());
        };
        // The seed protocol has no receipt frame: its messages carry `is_read` instead. Nor
        // has it a change frame: a replayed message shows its text as it is now (the store
        // and the hub's memory both hold messages as changed), and one deleted for everyone
        // is left out rather than shown as an empty message.
        let render = |delivery: &crate::delivery::MessageDelivery| {
            (!delivery.message.deleted).then(|| delivery.seed_frame())
        };
        self.last_delivered =
            session.catch_up(self.conversation, self.since, plan, render).await?.last;
        Ok(())
    }
}

/// How a refused handshake closes.
pub(crate) fn refusal(error: &IngestError) -> Close {
    let code = match error.code() {
        ErrorCode::NotFound => close::NOT_FOUND,
        ErrorCode::Forbidden => close::FORBIDDEN,
        ErrorCode::Unauthenticated => close::UNAUTHENTICATED,
        ErrorCode::InvalidInput | ErrorCode::InvalidJson => close::BAD_REQUEST,
        _ => close::TRY_AGAIN_LATER,
    };
    Close::new(code, error.public_detail())
}

fn error_frame(code: ErrorCode, detail: impl Into<String>) -> Utf8Bytes {
    render(&SeedErrorFrame {
        frame_type: "error".into(),
        code: code.as_str().into(),
        detail: detail.into(),
    })
}

/// A seed frame as a draft message. The seed sketched `file_url` for IMAGE and FILE; its
/// text is then the file's name.
pub(crate) fn draft_from_seed(inbound: SeedInbound) -> MessageDraft {
    let attachment = inbound.file_url.map(|url| {
        let name = if inbound.message.trim().is_empty() {
            url.rsplit('/').next().unwrap_or("file").to_owned()
        } else {
            inbound.message.clone()
        };
        let mime_type = match inbound.message_type {
            MessageType::Image => "image/*",
            _ => "application/octet-stream",
        };
        Attachment { url, name, mime_type: mime_type.into(), ..Attachment::default() }
    });
    MessageDraft {
        text: inbound.message,
        message_type: inbound.message_type,
        attachment,
        idempotency_key: None,
    }
}

impl Protocol for SeedProtocol {
    const NAME: &'static str = "seed";

    async fn on_text(&mut self, session: &mut Session, text: &str) -> Result<(), Close> {
        let inbound: SeedInbound = match schemas::object::from_str(text) {
            Ok(inbound) => inbound,
            Err(error) => {
                let detail =
                    format!("expected {{\"message\": \"...\", \"type\": \"TEXT\"}}: {error}");
                return session.send_text(error_frame(ErrorCode::InvalidJson, detail)).await;
            }
        };
        let job = Submission::Send {
            reference: None,
            conversation: self.conversation,
            draft: draft_from_seed(inbound),
        };
        if !session.submit(job) {
            let frame = error_frame(ErrorCode::RateLimited, "too many sends waiting; slow down");
            return session.send_text(frame).await;
        }
        Ok(())
    }

    fn render(&mut self, item: &Outbound) -> Option<Utf8Bytes> {
        let Outbound::Message(delivery) = item else {
            return None;
        };
        if delivery.conversation() != self.conversation || delivery.id() <= self.last_delivered {
            return None;
        }
        self.last_delivered = delivery.id();
        Some(delivery.seed_frame())
    }

    fn on_outcome(&mut self, outcome: Submitted) -> Option<Utf8Bytes> {
        match outcome {
            Submitted::Sent { result: Err(error), .. }
            | Submitted::Read { result: Err(error), .. } => {
                Some(error_frame(error.code(), error.public_detail()))
            }
            Submitted::Sent { result: Ok(_), .. } | Submitted::Read { result: Ok(_), .. } => None,
        }
    }

    fn subscriptions(&self) -> Vec<ConversationId> {
        vec![self.conversation]
    }
}
