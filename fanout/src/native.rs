//! The native protocol on `/v1/ws`: many conversations and the user's inbox on one
//! connection, acknowledged sends, read receipts, typing and presence.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use ingest::{MessageDraft, Rate, TokenBucket};
use schemas::native::{ClientFrame, ErrorCode, ServerFrame};
use schemas::{ConversationId, MessageId, UserId};

use crate::delivery::{Outbound, render};
use crate::send_task::{Submission, Submitted};
use crate::session::{Close, Protocol, Session};

#[derive(Debug)]
pub(crate) struct NativeProtocol {
    user: UserId,
    /// Subscribed conversations and the last message delivered in each.
    subscriptions: HashMap<ConversationId, MessageId>,
    /// Subscribes and unsubscribes allowed (see `FanoutConfig::subscription_changes`).
    changes: Option<(Rate, TokenBucket)>,
}

fn error(reference: Option<String>, code: ErrorCode, detail: impl Into<String>) -> Utf8Bytes {
    render(&ServerFrame::Error { reference, code, detail: detail.into() })
}

impl NativeProtocol {
    pub(crate) fn new(user: UserId, change_rate: Option<Rate>) -> Self {
        let changes = change_rate.map(|rate| (rate, TokenBucket::full(rate, Instant::now())));
        Self { user, subscriptions: HashMap::new(), changes }
    }

    /// Takes one subscription change; the refusal frame when the connection has none left.
    fn take_change(&mut self) -> Result<(), Utf8Bytes> {
        let Some((rate, bucket)) = &mut self.changes else { return Ok(()) };
        bucket.take(*rate, Instant::now()).map_err(|wait| {
            crate::metrics::limit_reached(crate::metrics::Limit::SubscriptionChanges);
            let detail = format!(
                "too many subscribes and unsubscribes; retry in {} ms",
                wait.as_millis().max(1)
            );
            error(None, ErrorCode::RateLimited, detail)
        })
    }

    /// Greets the client (its inbox updates were registered before the upgrade).
    pub(crate) async fn start(&mut self, session: &mut Session) -> Result<(), Close> {
        let caller = session.caller.clone();
        let ready = ServerFrame::Ready { user_id: caller.user_id, name: caller.name };
        session.send_text(render(&ready)).await
    }

    async fn subscribe(
        &mut self,
        session: &mut Session,
        conversation: ConversationId,
        since: Option<MessageId>,
    ) -> Result<(), Close> {
        let fresh = !self.subscriptions.contains_key(&conversation);
        if fresh && self.subscriptions.len() >= session.hub.config().max_subscriptions {
            crate::metrics::limit_reached(crate::metrics::Limit::Subscriptions);
            let detail = format!(
                "at most {} subscriptions per connection",
                session.hub.config().max_subscriptions
            );
            return session.send_text(error(None, ErrorCode::RateLimited, detail)).await;
        }
        let caller = session.caller.clone();
        let record = match session.ingest.authorize(&caller, conversation).await {
            Ok(record) => record,
            Err(failure) => {
                failure.log_if_internal();
                let frame = error(None, failure.code(), failure.public_detail());
                return session.send_text(frame).await;
            }
        };
        // Until the catch-up below is written, live messages wait in the queue; the
        // filter in `render` then drops any the catch-up already delivered.
        self.subscriptions.insert(conversation, since.unwrap_or(MessageId::ZERO));
        let participants = [record.client.id.clone(), record.worker.id.clone()];
        let caught_up = session
            .subscribe(conversation, participants, since, |delivery| Some(delivery.native_frame()))
            .await?;
        self.subscriptions.insert(conversation, caught_up.last);
        for frame in caught_up.changes.into_iter().chain(caught_up.receipts) {
            session.send_text(frame).await?;
        }
        session
            .send_text(render(&ServerFrame::Subscribed { conversation_id: conversation }))
            .await?;
        let others: Vec<_> = [&record.client.id, &record.worker.id]
            .into_iter()
            .filter(|id| **id != caller.user_id)
            .collect();
        for frame in session.hub.presence_of(conversation, &others) {
            session.send_text(frame).await?;
        }
        session.ask_presence(&others).await;
        Ok(())
    }

    fn queue(
        session: &mut Session,
        submission: Submission,
        reference: Option<String>,
    ) -> Option<Utf8Bytes> {
        (!session.submit(submission))
            .then(|| error(reference, ErrorCode::RateLimited, "too many sends waiting; slow down"))
    }
}

impl Protocol for NativeProtocol {
    const NAME: &'static str = "native";

    async fn on_text(&mut self, session: &mut Session, text: &str) -> Result<(), Close> {
        let frame: ClientFrame = match schemas::object::from_str(text) {
            Ok(frame) => frame,
            Err(failure) => {
                return session
                    .send_text(error(None, ErrorCode::InvalidJson, failure.to_string()))
                    .await;
            }
        };
        let refusal = match frame {
            ClientFrame::Subscribe { conversation_id, since } => match self.take_change() {
                Ok(()) => return self.subscribe(session, conversation_id, since).await,
                Err(refusal) => Some(refusal),
            },
            ClientFrame::Unsubscribe { conversation_id } => {
                if let Err(refusal) = self.take_change() {
                    return session.send_text(refusal).await;
                }
                if self.subscriptions.remove(&conversation_id).is_some() {
                    session.unsubscribe(conversation_id).await;
                }
                Some(render(&ServerFrame::Unsubscribed { conversation_id }))
            }
            ClientFrame::Send {
                reference,
                conversation_id,
                text,
                message_type,
                attachment,
                idempotency_key,
            } => {
                let draft = MessageDraft { text, message_type, attachment, idempotency_key };
                let job = Submission::Send {
                    reference: reference.clone(),
                    conversation: conversation_id,
                    draft,
                };
                Self::queue(session, job, reference)
            }
            ClientFrame::Read { reference, conversation_id, up_to } => {
                let job = Submission::Read {
                    reference: reference.clone(),
                    conversation: conversation_id,
                    up_to,
                };
                Self::queue(session, job, reference)
            }
            ClientFrame::Ping { reference } => Some(render(&ServerFrame::Pong { reference })),
            ClientFrame::Typing { conversation_id, is_typing } => {
                if self.subscriptions.contains_key(&conversation_id) {
                    session.set_typing(conversation_id, is_typing).await;
                    None
                } else {
                    Some(error(
                        None,
                        ErrorCode::Forbidden,
                        "subscribe to a conversation before typing in it",
                    ))
                }
            }
        };
        match refusal {
            Some(frame) => session.send_text(frame).await,
            None => Ok(()),
        }
    }

    fn render(&mut self, item: &Outbound) -> Option<Utf8Bytes> {
        match item {
            Outbound::Native(frame) => Some(Utf8Bytes::clone(frame)),
            Outbound::About(about) => (about.0 != self.user).then(|| about.1.clone()),
            Outbound::Message(delivery) => {
                let last = self.subscriptions.get_mut(&delivery.conversation())?;
                if delivery.id() <= *last {
                    return None;
                }
                *last = delivery.id();
                Some(delivery.native_frame())
            }
        }
    }

    fn on_outcome(&mut self, outcome: Submitted) -> Option<Utf8Bytes> {
        let frame = match outcome {
            Submitted::Sent { reference, result: Ok(sent) } => ServerFrame::Ack {
                reference,
                message_id: Some(sent.id),
                up_to: None,
                duplicate: sent.duplicate,
            },
            Submitted::Read { reference, result: Ok(mark) } => ServerFrame::Ack {
                reference,
                message_id: None,
                up_to: Some(mark.up_to),
                duplicate: false,
            },
            Submitted::Sent { reference, result: Err(failure) }
            | Submitted::Read { reference, result: Err(failure) } => ServerFrame::Error {
                reference,
                code: failure.code(),
                detail: failure.public_detail(),
            },
        };
        Some(render(&frame))
    }

    fn subscriptions(&self) -> Vec<ConversationId> {
        self.subscriptions.keys().copied().collect()
    }
}
