//! Typing indicators shown to this node's connections, with the time each lapses unless
//! repeated. Every node withdraws lapsed ones itself, so an indicator stops even when the
//! typer's connection or node is gone without a word.

use std::collections::HashMap;
use std::time::Instant;

use schemas::{ConversationId, UserId};

#[derive(Debug, Default)]
pub(crate) struct TypingBoard {
    until: HashMap<ConversationId, HashMap<UserId, Instant>>,
}

impl TypingBoard {
    /// Shows `user` typing in `conversation` until `until`, or withdraws it.
    pub(crate) fn set(
        &mut self,
        conversation: ConversationId,
        user: UserId,
        typing_until: Option<Instant>,
    ) {
        match typing_until {
            Some(until) => {
                self.until.entry(conversation).or_default().insert(user, until);
            }
            None => {
                if let Some(users) = self.until.get_mut(&conversation) {
                    users.remove(&user);
                    if users.is_empty() {
                        self.until.remove(&conversation);
                    }
                }
            }
        }
    }

    /// Removes and returns the indicators that lapsed by `now`.
    pub(crate) fn lapsed(&mut self, now: Instant) -> Vec<(ConversationId, UserId)> {
        let mut lapsed = Vec::new();
        self.until.retain(|conversation, users| {
            users.retain(|user, until| {
                let gone = *until <= now;
                if gone {
                    lapsed.push((*conversation, user.clone()));
                }
                !gone
            });
            !users.is_empty()
        });
        lapsed
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_indicator_lapses_unless_repeated_or_withdrawn() {
        let mut board = TypingBoard::default();
        let (c, ana, bo) = (
            ConversationId::new(1).unwrap(),
            UserId::new("ana").unwrap(),
            UserId::new("bo").unwrap(),
        );
        let now = Instant::now();
        board.set(c, ana.clone(), Some(now + Duration::from_secs(5)));
        board.set(c, bo.clone(), Some(now + Duration::from_secs(5)));
        board.set(c, bo, None);
        assert!(board.lapsed(now + Duration::from_secs(4)).is_empty());
        board.set(c, ana.clone(), Some(now + Duration::from_secs(10)));
        assert!(board.lapsed(now + Duration::from_secs(6)).is_empty(), "repeated in time");
        assert_eq!(board.lapsed(now + Duration::from_secs(10)), [(c, ana)]);
        assert!(board.lapsed(now + Duration::from_secs(60)).is_empty(), "withdrawn once");
    }
}
