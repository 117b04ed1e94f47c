//! Which users this node's connections show in each conversation, indexed by conversation
//! so that answering a presence query reads one conversation, not every entry.
//!
//! Edges are numbered: a user's first connection to a conversation here (online) and their
//! last one gone (offline) each take the next number, under the same lock as the change,
//! so that other nodes can order this node's announcements whatever order they arrive in.

use std::collections::HashMap;

use schemas::{ConversationId, UserId};

#[derive(Debug, Default)]
pub(crate) struct LocalPresence {
    /// Per conversation, per user, the connections showing them.
    by_conversation: HashMap<ConversationId, HashMap<UserId, Vec<u64>>>,
    /// The last announcement number given out.
    seq: u64,
}

impl LocalPresence {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Notes that `connection` shows `user` in `conversation`; the number to announce
    /// "online" with when it is the user's first connection to it here.
    pub(crate) fn join(
        &mut self,
        conversation: ConversationId,
        user: &UserId,
        connection: u64,
    ) -> Option<u64> {
        let users = self.by_conversation.entry(conversation).or_default();
        let connections = users.entry(user.clone()).or_default();
        if connections.contains(&connection) {
            return None;
        }
        connections.push(connection);
        let first = connections.len() == 1;
        first.then(|| self.next_seq())
    }

    /// Undoes [`LocalPresence::join`]; the number to announce "offline" with when it was
    /// the user's last connection to the conversation here.
    pub(crate) fn leave(
        &mut self,
        conversation: ConversationId,
        user: &UserId,
        connection: u64,
    ) -> Option<u64> {
        let users = self.by_conversation.get_mut(&conversation)?;
        let connections = users.get_mut(user)?;
        let before = connections.len();
        connections.retain(|existing| *existing != connection);
        if connections.len() == before || !connections.is_empty() {
            return None;
        }
        users.remove(user);
        if users.is_empty() {
            self.by_conversation.remove(&conversation);
        }
        Some(self.next_seq())
    }

    /// The users shown in `conversation` here, each with a fresh announcement number.
    pub(crate) fn announce(&mut self, conversation: ConversationId) -> Vec<(UserId, u64)> {
        let users: Vec<UserId> = self
            .by_conversation
            .get(&conversation)
            .map(|users| users.keys().cloned().collect())
            .unwrap_or_default();
        users.into_iter().map(|user| (user, self.next_seq())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_and_last_connection_are_edges_and_numbers_rise() {
        let mut here = LocalPresence::default();
        let (c, ana) = (ConversationId::new(1).unwrap(), UserId::new("ana").unwrap());
        let online = here.join(c, &ana, 1).unwrap();
        assert_eq!(here.join(c, &ana, 2), None, "a second tab is no edge");
        assert_eq!(here.join(c, &ana, 2), None, "nor is joining twice");
        assert_eq!(here.leave(c, &ana, 1), None);
        assert_eq!(here.leave(c, &ana, 9), None, "an unknown connection changes nothing");
        let offline = here.leave(c, &ana, 2).unwrap();
        assert!(offline > online);
        assert!(here.announce(c).is_empty());
    }

    #[test]
    fn a_query_is_answered_from_its_conversation_only() {
        let mut here = LocalPresence::default();
        let (one, two) = (ConversationId::new(1).unwrap(), ConversationId::new(2).unwrap());
        here.join(one, &UserId::new("ana").unwrap(), 1);
        here.join(two, &UserId::new("bo").unwrap(), 2);
        let answered = here.announce(one);
        assert_eq!(answered.len(), 1);
        assert_eq!(answered[0].0.as_str(), "ana");
        assert!(answered[0].1 > 2, "a fresh number, after both edges");
    }
}
