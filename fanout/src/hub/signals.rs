//! What the hub does with signals from every node (typing, presence, liveness, inbox
//! updates), and the sweeps that withdraw lapsed typing indicators and presence.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use schemas::native::{PresenceStatus, ServerFrame};
use schemas::signals::Signal;
use schemas::{ConversationId, Timestamp, UserId};

use super::Hub;
use crate::delivery::{Outbound, render};
use crate::metrics;
use crate::presence::{Announcement, Change};

/// Presence entries remembered before offline ones are forgotten.
const PRESENCE_MEMORY: usize = 100_000;

impl Hub {
    /// Applies a signal from any node; returns the signals this node must publish in
    /// answer (presence queries are answered with this node's sightings).
    pub(crate) fn on_signal(&self, signal: Signal) -> Vec<Signal> {
        metrics::signal_received(match &signal {
            Signal::Typing { .. } => "typing",
            Signal::Presence { .. } => "presence",
            Signal::NodeAlive { .. } => "node_alive",
            Signal::PresenceQuery { .. } => "presence_query",
            Signal::InboxUpdated { .. } => "inbox",
        });
        match signal {
            Signal::Typing { conversation_id, user_id, is_typing, .. } => {
                let until = is_typing.then(|| Instant::now() + self.config.typing_ttl);
                self.typing.lock().set(conversation_id, user_id.clone(), until);
                self.deliver_typing(conversation_id, user_id, is_typing);
            }
            Signal::Presence { user_id, status, at, node, seq } => {
                let change = self.presence.lock().observe(
                    user_id,
                    Announcement { node: &node, seq, status, at },
                    Instant::now(),
                );
                if let Some(change) = change {
                    self.deliver_presence(&change);
                }
            }
            Signal::NodeAlive { node, .. } => {
                self.presence.lock().node_alive(&node, Instant::now());
            }
            Signal::PresenceQuery { user_ids, .. } => {
                let here = self.local_presence.lock().announce(&user_ids);
                return here
                    .into_iter()
                    .map(|(user_id, seq)| Signal::Presence {
                        user_id,
                        status: PresenceStatus::Online,
                        at: Timestamp::now(),
                        node: self.node.clone(),
                        seq,
                    })
                    .collect();
            }
            Signal::InboxUpdated { user_id, item } => {
                let frame = Outbound::Native(Arc::new(render(&ServerFrame::Inbox { item: *item })));
                self.inbox.offer(&user_id, &frame);
            }
        }
        Vec::new()
    }

    /// The last known presence of each of `users`, as native frames of `conversation`.
    pub fn presence_of(&self, conversation: ConversationId, users: &[&UserId]) -> Vec<Utf8Bytes> {
        let presence = self.presence.lock();
        users
            .iter()
            .filter_map(|user| {
                let (status, at) = presence.snapshot(user)?;
                Some(render(&ServerFrame::Presence {
                    conversation_id: conversation,
                    user_id: (*user).clone(),
                    status,
                    at,
                }))
            })
            .collect()
    }

    /// Those of `users` this node has heard nothing of (they connected before it started,
    /// or were forgotten): what to ask the other nodes about.
    pub fn unheard_of(&self, users: &[&UserId]) -> Vec<UserId> {
        let presence = self.presence.lock();
        users
            .iter()
            .filter(|user| presence.snapshot(user).is_none())
            .map(|u| (*u).clone())
            .collect()
    }

    /// Shows a change of a user's presence in every conversation watched here that they
    /// take part in.
    fn deliver_presence(&self, change: &Change) {
        let mut conversations = self.conversations.lock();
        for conversation in conversations.subscribers.watched_with(&change.user) {
            let frame = render(&ServerFrame::Presence {
                conversation_id: conversation,
                user_id: change.user.clone(),
                status: change.status,
                at: change.at,
            });
            let item = Outbound::About(Arc::new((change.user.clone(), frame)));
            conversations.offer(conversation, &item);
        }
    }

    /// Turns offline the users of nodes not heard from within the presence TTL.
    pub(crate) fn expire_presence(&self) {
        let changes = {
            let mut presence = self.presence.lock();
            let changes = presence.expire(Instant::now(), Timestamp::now());
            presence.forget_offline(PRESENCE_MEMORY);
            changes
        };
        for change in changes {
            self.deliver_presence(&change);
        }
    }

    fn deliver_typing(&self, conversation: ConversationId, user: UserId, is_typing: bool) {
        let frame = render(&ServerFrame::Typing {
            conversation_id: conversation,
            user_id: user.clone(),
            is_typing,
        });
        self.offer(conversation, &Outbound::About(Arc::new((user, frame))));
    }

    /// Withdraws indicators not repeated within the typing TTL.
    pub(crate) fn expire_typing(&self) {
        let lapsed = self.typing.lock().lapsed(Instant::now());
        for (conversation, user) in lapsed {
            self.deliver_typing(conversation, user, false);
        }
    }
}
