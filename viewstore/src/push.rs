//! Browsers' Web Push subscriptions, by user. Not derived from the log: a subscription holds
//! a browser's keys, which have no place in an event stream that analytics teams read.

use async_trait::async_trait;
use schemas::{Timestamp, UserId};

use crate::StoreError;

/// One browser's subscription, as checked when it was registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPushSubscription {
    pub endpoint: String,
    /// Base64url, as the browser sent them.
    pub p256dh: String,
    pub auth: String,
    /// When it was last registered: the oldest go first past the bound per user.
    pub registered_at: Timestamp,
}

/// Written by ingest (a user's own registrations and removals) and by the notifier (a push
/// service answered that a subscription is gone).
#[async_trait]
pub trait PushSubscriptions: Send + Sync + 'static {
    /// Keeps `subscription` for `user`. An endpoint belongs to one user: registering it
    /// takes it from whoever had it (a browser shared by two accounts notifies the one
    /// signed in). Past `keep` subscriptions, the user's oldest are removed.
    async fn put_push_subscription(
        &self,
        user: &UserId,
        subscription: &StoredPushSubscription,
        keep: usize,
    ) -> Result<(), StoreError>;

    /// Removes `user`'s subscription to `endpoint`; false if they had none.
    async fn remove_push_subscription(
        &self,
        user: &UserId,
        endpoint: &str,
    ) -> Result<bool, StoreError>;

    /// `user`'s subscriptions, newest first.
    async fn push_subscriptions(
        &self,
        user: &UserId,
    ) -> Result<Vec<StoredPushSubscription>, StoreError>;
}
