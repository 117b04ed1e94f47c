//! Keyed sends leave their lookups in the order they arrived within a conversation, and
//! never wait for another conversation's lookup: a slow store read holds back only the
//! sends that must follow it. (Message order is per conversation; across conversations the
//! order two requests arrived in means nothing.)

use std::collections::{HashMap, VecDeque};

use schemas::ConversationId;

/// Items finishing out of order, released in arrival order per conversation.
#[derive(Debug)]
pub(crate) struct InOrder<T> {
    next: u64,
    /// Per conversation, the arrivals not yet released, oldest first.
    queues: HashMap<ConversationId, VecDeque<u64>>,
    /// Finished arrivals waiting for an earlier one of their conversation; `None` for one
    /// that finished with nothing to release (answered from the store, or failed).
    finished: HashMap<u64, Option<T>>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        Self { next: 0, queues: HashMap::new(), finished: HashMap::new() }
    }
}

impl<T> InOrder<T> {
    /// Takes an arrival of `conversation`; returns its number, for [`InOrder::finish`].
    pub(crate) fn arrive(&mut self, conversation: ConversationId) -> u64 {
        let number = self.next;
        self.next += 1;
        self.queues.entry(conversation).or_default().push_back(number);
        number
    }

    /// Arrival `number` finished with `item`; returns what may leave now, in order: it and
    /// the later finished arrivals of its conversation, unless an earlier one is unfinished.
    pub(crate) fn finish(
        &mut self,
        conversation: ConversationId,
        number: u64,
        item: Option<T>,
    ) -> Vec<T> {
        self.finished.insert(number, item);
        let mut released = Vec::new();
        let Some(queue) = self.queues.get_mut(&conversation) else {
            return released;
        };
        while let Some(front) = queue.front() {
            let Some(item) = self.finished.remove(front) else { break };
            queue.pop_front();
            released.extend(item);
        }
        if queue.is_empty() {
            self.queues.remove(&conversation);
        }
        released
    }

    /// Everything finished but held back, for a writer that stops.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.queues.clear();
        self.finished.drain().filter_map(|(_, item)| item).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(id: u64) -> ConversationId {
        ConversationId::new(id).unwrap_or_else(|_| unreachable!("a valid id"))
    }

    #[test]
    fn a_slow_lookup_holds_back_only_its_own_conversation() {
        let (a, b) = (conversation(1), conversation(2));
        let mut order = InOrder::default();
        let a1 = order.arrive(a);
        let b1 = order.arrive(b);
        let a2 = order.arrive(a);
        let b2 = order.arrive(b);
        assert_eq!(order.finish(a, a2, Some("a2")), Vec::<&str>::new(), "a1 is still looking");
        assert_eq!(order.finish(b, b2, Some("b2")), Vec::<&str>::new(), "b1 is still looking");
        assert_eq!(order.finish(b, b1, Some("b1")), ["b1", "b2"], "b does not wait for a");
        assert_eq!(order.finish(a, a1, Some("a1")), ["a1", "a2"]);
        assert!(order.queues.is_empty() && order.finished.is_empty());
    }

    #[test]
    fn an_arrival_finished_without_an_item_lets_the_next_go() {
        let a = conversation(1);
        let mut order = InOrder::default();
        let first = order.arrive(a);
        let second = order.arrive(a);
        let third = order.arrive(a);
        assert!(order.finish(a, third, Some(3)).is_empty());
        assert!(order.finish(a, second, Some(2)).is_empty());
        assert_eq!(
            order.finish(a, first, None),
            [2, 3],
            "answered from the store: nothing to append"
        );
        let fourth = order.arrive(a);
        let fifth = order.arrive(a);
        assert!(order.finish(a, fifth, Some(5)).is_empty());
        assert_eq!(order.drain(), [5], "a stopping writer gets what it held back");
        assert!(order.finish(a, fourth, Some(4)).is_empty(), "after a drain nothing is held");
    }
}
