//! Who blocks each recently asked-about conversation: what a send checks, kept briefly so
//! that a busy conversation costs one store read a second rather than one per message.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;
use schemas::{ConversationId, UserId};

/// How long a cached answer to "who blocks this conversation?" is used.
pub(crate) const BLOCKS_FRESH_FOR: Duration = Duration::from_secs(1);
const CACHED_CONVERSATIONS: usize = 100_000;

/// Who blocks each recently asked-about conversation, and since when the answer is known.
#[derive(Debug)]
pub(crate) struct BlockCache {
    known: Mutex<LruCache<ConversationId, (Vec<UserId>, Instant)>>,
}

impl Default for BlockCache {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(CACHED_CONVERSATIONS).unwrap_or(NonZeroUsize::MIN);
        Self { known: Mutex::new(LruCache::new(capacity)) }
    }
}

impl BlockCache {
    pub(crate) fn fresh(&self, conversation: ConversationId) -> Option<Vec<UserId>> {
        let mut known = self.known.lock();
        match known.get(&conversation) {
            Some((blockers, at)) if at.elapsed() < BLOCKS_FRESH_FOR => Some(blockers.clone()),
            _ => None,
        }
    }

    pub(crate) fn put(&self, conversation: ConversationId, blockers: Vec<UserId>) {
        self.known.lock().put(conversation, (blockers, Instant::now()));
    }
}
