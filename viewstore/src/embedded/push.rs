//! Push subscriptions in SQLite: one row per endpoint, so an endpoint has one user.

use async_trait::async_trait;
use rusqlite::params;
use schemas::{Timestamp, UserId};

use super::EmbeddedStore;
use crate::{PushSubscriptions, StoreError, StoredPushSubscription};

#[async_trait]
impl PushSubscriptions for EmbeddedStore {
    async fn put_push_subscription(
        &self,
        user: &UserId,
        subscription: &StoredPushSubscription,
        keep: usize,
    ) -> Result<(), StoreError> {
        let (user, subscription) = (user.as_str().to_owned(), subscription.clone());
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.write(move |conn| {
            let transaction = conn.transaction()?;
            transaction.execute(
                "INSERT INTO push_subscriptions (endpoint, user_id, p256dh, auth, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id,
                    p256dh = excluded.p256dh, auth = excluded.auth,
                    registered_at = excluded.registered_at",
                params![
                    subscription.endpoint,
                    user,
                    subscription.p256dh,
                    subscription.auth,
                    subscription.registered_at.millis()
                ],
            )?;
            transaction.execute(
                "DELETE FROM push_subscriptions WHERE user_id = ?1 AND endpoint NOT IN (
                    SELECT endpoint FROM push_subscriptions WHERE user_id = ?1
                    ORDER BY registered_at DESC, endpoint LIMIT ?2)",
                params![user, keep],
            )?;
            transaction.commit()
        })
        .await
    }

    async fn remove_push_subscription(
        &self,
        user: &UserId,
        endpoint: &str,
    ) -> Result<bool, StoreError> {
        let (user, endpoint) = (user.as_str().to_owned(), endpoint.to_owned());
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM push_subscriptions WHERE user_id = ?1 AND endpoint = ?2",
                params![user, endpoint],
            )
            .map(|removed| removed > 0)
        })
        .await
    }

    async fn push_subscriptions(
        &self,
        user: &UserId,
    ) -> Result<Vec<StoredPushSubscription>, StoreError> {
        let user = user.as_str().to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT endpoint, p256dh, auth, registered_at FROM push_subscriptions
                 WHERE user_id = ?1 ORDER BY registered_at DESC, endpoint",
            )?;
            let rows = statement.query_map([user], |row| {
                Ok(StoredPushSubscription {
                    endpoint: row.get(0)?,
                    p256dh: row.get(1)?,
                    auth: row.get(2)?,
                    registered_at: Timestamp::from_millis(row.get(3)?),
                })
            })?;
            rows.collect()
        })
        .await
    }
}
