//! Which users hold connections on this node: presence means "connected to the chat", on
//! any device and whatever the connection watches.
//!
//! Edges are numbered: a user's first connection here (online) and their last one gone
//! (offline) each take the next number, under the same lock as the change, so that other
//! nodes can order this node's announcements whatever order they arrive in.

use std::collections::HashMap;

use schemas::UserId;

#[derive(Debug, Default)]
pub(crate) struct LocalPresence {
    /// Per user, their connections on this node.
    connections: HashMap<UserId, Vec<u64>>,
    /// The last announcement number given out.
    seq: u64,
}

impl LocalPresence {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Notes `connection` of `user`; the number to announce "online" with when it is the
    /// user's first connection here.
    pub(crate) fn join(&mut self, user: &UserId, connection: u64) -> Option<u64> {
        let connections = self.connections.entry(user.clone()).or_default();
        if connections.contains(&connection) {
            return None;
        }
        connections.push(connection);
        let first = connections.len() == 1;
        first.then(|| self.next_seq())
    }

    /// Undoes [`LocalPresence::join`]; the number to announce "offline" with when it was
    /// the user's last connection here.
    pub(crate) fn leave(&mut self, user: &UserId, connection: u64) -> Option<u64> {
        let connections = self.connections.get_mut(user)?;
        let before = connections.len();
        connections.retain(|existing| *existing != connection);
        if connections.len() == before || !connections.is_empty() {
            return None;
        }
        self.connections.remove(user);
        Some(self.next_seq())
    }

    /// Those of `users` connected here, each with a fresh announcement number.
    pub(crate) fn announce(&mut self, users: &[UserId]) -> Vec<(UserId, u64)> {
        let here: Vec<UserId> =
            users.iter().filter(|user| self.connections.contains_key(*user)).cloned().collect();
        here.into_iter().map(|user| (user, self.next_seq())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_and_last_connection_are_edges_and_numbers_rise() {
        let mut here = LocalPresence::default();
        let ana = UserId::new("ana").unwrap();
        let online = here.join(&ana, 1).unwrap();
        assert_eq!(here.join(&ana, 2), None, "a second device is no edge");
        assert_eq!(here.join(&ana, 2), None, "nor is joining twice");
        assert_eq!(here.leave(&ana, 1), None);
        assert_eq!(here.leave(&ana, 9), None, "an unknown connection changes nothing");
        let offline = here.leave(&ana, 2).unwrap();
        assert!(offline > online);
        assert!(here.announce(&[ana]).is_empty());
    }

    #[test]
    fn a_query_is_answered_for_the_users_connected_here_only() {
        let mut here = LocalPresence::default();
        let (ana, bo, cy) =
            (UserId::new("ana").unwrap(), UserId::new("bo").unwrap(), UserId::new("cy").unwrap());
        here.join(&ana, 1);
        here.join(&bo, 2);
        let answered = here.announce(&[ana.clone(), cy]);
        assert_eq!(answered.len(), 1);
        assert_eq!(answered[0].0, ana);
        assert!(answered[0].1 > 2, "a fresh number, after both edges");
    }
}
