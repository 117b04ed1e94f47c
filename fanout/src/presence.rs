//! Who is connected, across fanout nodes, without per-user heartbeats.
//!
//! A user is online while at least one live fanout node holds a connection of theirs (any
//! protocol, whatever it watches); "last seen" is when the last one closed. Nodes announce
//! edges (a user's first connection on the node: online; its last one gone: offline) and,
//! separately, that they are alive. A node that stops saying it is alive (crashed,
//! partitioned) has its sightings expire after the TTL, which turns its users offline
//! elsewhere. A node asks (`presence_query`) about participants it knows nothing of (it
//! started after they connected), and the nodes holding them answer.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use schemas::native::PresenceStatus;
use schemas::{Timestamp, UserId};

#[derive(Debug)]
pub struct PresenceBook {
    ttl: Duration,
    /// Nodes that announced each user online.
    sightings: HashMap<UserId, HashSet<String>>,
    /// When each node last said it was alive (or announced anything).
    nodes: HashMap<String, Instant>,
    /// The last effective status of each user and since when, for snapshots.
    last: HashMap<UserId, (PresenceStatus, Timestamp)>,
    /// The newest announcement applied per user and node: an older one arriving later (the
    /// bus does not keep order across its partitions) must not undo it.
    applied: HashMap<(UserId, String), u64>,
}

/// One node's word on one user.
#[derive(Debug, Clone, Copy)]
pub struct Announcement<'a> {
    pub node: &'a str,
    /// The node's announcement number; 0 when it does not count them.
    pub seq: u64,
    pub status: PresenceStatus,
    pub at: Timestamp,
}

/// A change of a user's effective status, to push to the subscribers of their conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub user: UserId,
    pub status: PresenceStatus,
    pub at: Timestamp,
}

impl PresenceBook {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            sightings: HashMap::new(),
            nodes: HashMap::new(),
            last: HashMap::new(),
            applied: HashMap::new(),
        }
    }

    pub fn node_alive(&mut self, node: &str, now: Instant) {
        self.nodes.insert(node.to_owned(), now);
    }

    fn is_alive(&self, node: &str, now: Instant) -> bool {
        self.nodes.get(node).is_some_and(|heard| now.saturating_duration_since(*heard) < self.ttl)
    }

    /// Whether `user` has a connection on a live node.
    pub fn is_online(&self, user: &UserId, now: Instant) -> bool {
        self.effective(user, now) == PresenceStatus::Online
    }

    fn effective(&self, user: &UserId, now: Instant) -> PresenceStatus {
        let online = self
            .sightings
            .get(user)
            .is_some_and(|nodes| nodes.iter().any(|node| self.is_alive(node, now)));
        if online { PresenceStatus::Online } else { PresenceStatus::Offline }
    }

    /// Applies a node's announcement, unless one newer from the same node was applied
    /// already; returns the change, if the effective status moved.
    pub fn observe(
        &mut self,
        user: UserId,
        announcement: Announcement<'_>,
        now: Instant,
    ) -> Option<Change> {
        let Announcement { node, seq, status, at } = announcement;
        self.node_alive(node, now);
        if seq > 0 {
            let newest = self.applied.entry((user.clone(), node.to_owned())).or_insert(0);
            if seq <= *newest {
                return None;
            }
            *newest = seq;
        }
        let before = self.effective(&user, now);
        match status {
            PresenceStatus::Online => {
                self.sightings.entry(user.clone()).or_default().insert(node.to_owned());
            }
            PresenceStatus::Offline => {
                if let Some(nodes) = self.sightings.get_mut(&user) {
                    nodes.remove(node);
                    if nodes.is_empty() {
                        self.sightings.remove(&user);
                    }
                }
            }
        }
        self.settle(user, before, at, now)
    }

    fn settle(
        &mut self,
        user: UserId,
        before: PresenceStatus,
        at: Timestamp,
        now: Instant,
    ) -> Option<Change> {
        let after = self.effective(&user, now);
        if before == after && self.last.contains_key(&user) {
            return None;
        }
        self.last.insert(user.clone(), (after, at));
        Some(Change { user, status: after, at })
    }

    /// Forgets nodes not heard from within the TTL; returns the users that went offline.
    pub fn expire(&mut self, now: Instant, at: Timestamp) -> Vec<Change> {
        let dead: Vec<String> =
            self.nodes.keys().filter(|node| !self.is_alive(node, now)).cloned().collect();
        if dead.is_empty() {
            return Vec::new();
        }
        let touched: Vec<UserId> = self
            .sightings
            .iter()
            .filter(|(_, nodes)| nodes.iter().any(|node| dead.contains(node)))
            .map(|(user, _)| user.clone())
            .collect();
        let mut changes = Vec::new();
        for user in touched {
            let before =
                self.last.get(&user).map_or(PresenceStatus::Offline, |(status, _)| *status);
            if let Some(nodes) = self.sightings.get_mut(&user) {
                nodes.retain(|node| !dead.contains(node));
                if nodes.is_empty() {
                    self.sightings.remove(&user);
                }
            }
            changes.extend(self.settle(user, before, at, now));
        }
        self.applied.retain(|(_, node), _| !dead.contains(node));
        for node in dead {
            self.nodes.remove(&node);
        }
        changes
    }

    /// The last known status of a user, if any was ever seen.
    pub fn snapshot(&self, user: &UserId) -> Option<(PresenceStatus, Timestamp)> {
        self.last.get(user).copied()
    }

    /// Users remembered, for bounding memory: offline users are dropped first.
    pub fn forget_offline(&mut self, keep: usize) {
        if self.last.len() <= keep {
            return;
        }
        self.last.retain(|_, (status, _)| *status == PresenceStatus::Online);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::new(name).unwrap()
    }

    fn said(node: &str, seq: u64, status: PresenceStatus) -> Announcement<'_> {
        Announcement { node, seq, status, at: Timestamp::from_millis(1) }
    }

    #[test]
    fn an_older_announcement_arriving_late_changes_nothing() {
        let mut book = PresenceBook::new(Duration::from_secs(30));
        let now = Instant::now();
        // Node a answered a query (online, 7), then its user left (offline, 8); the bus
        // delivered the two in the other order.
        let gone = book.observe(user("wei"), said("a", 8, PresenceStatus::Offline), now);
        assert_eq!(gone.map(|change| change.status), Some(PresenceStatus::Offline));
        assert_eq!(book.observe(user("wei"), said("a", 7, PresenceStatus::Online), now), None);
        assert_eq!(book.snapshot(&user("wei")).map(|(s, _)| s), Some(PresenceStatus::Offline));
        // Numbers are per node: another node's lower number still counts.
        let back = book.observe(user("wei"), said("b", 2, PresenceStatus::Online), now);
        assert_eq!(back.map(|change| change.status), Some(PresenceStatus::Online));
        // Nodes that do not count (0) are always applied.
        assert_eq!(
            book.observe(user("wei"), said("b", 0, PresenceStatus::Offline), now).map(|c| c.status),
            Some(PresenceStatus::Offline)
        );
    }

    #[test]
    fn a_user_stays_online_while_any_node_holds_them() {
        let mut book = PresenceBook::new(Duration::from_secs(30));
        let now = Instant::now();
        let online = book.observe(user("wei"), said("a", 0, PresenceStatus::Online), now).unwrap();
        assert_eq!(online.status, PresenceStatus::Online);
        assert_eq!(book.observe(user("wei"), said("b", 0, PresenceStatus::Online), now), None);
        assert_eq!(book.observe(user("wei"), said("a", 0, PresenceStatus::Offline), now), None);
        let offline =
            book.observe(user("wei"), said("b", 0, PresenceStatus::Offline), now).unwrap();
        assert_eq!(offline.status, PresenceStatus::Offline);
        assert_eq!(book.snapshot(&user("wei")).map(|(s, _)| s), Some(PresenceStatus::Offline));
    }

    #[test]
    fn a_silent_node_takes_its_users_offline_after_the_ttl() {
        let mut book = PresenceBook::new(Duration::from_secs(30));
        let start = Instant::now();
        let at = Timestamp::from_millis(1);
        book.observe(
            user("wei"),
            Announcement { node: "a", seq: 0, status: PresenceStatus::Online, at },
            start,
        );
        book.observe(
            user("zoe"),
            Announcement { node: "b", seq: 0, status: PresenceStatus::Online, at },
            start,
        );
        book.node_alive("b", start + Duration::from_secs(20));
        assert!(book.expire(start + Duration::from_secs(10), at).is_empty());
        let gone = book.expire(start + Duration::from_secs(31), at);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].user.as_str(), gone[0].status), ("wei", PresenceStatus::Offline));
        assert_eq!(book.snapshot(&user("zoe")).map(|(s, _)| s), Some(PresenceStatus::Online));
    }
}
