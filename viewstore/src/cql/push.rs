//! Push subscriptions on CQL: a partition per user (what the notifier reads), and a table
//! of endpoints that gives each endpoint one user. Not on any hot path: a browser registers
//! once per session, the notifier reads once per notification.

use async_trait::async_trait;
use schemas::{Timestamp, UserId};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::{CqlStore, unavailable};
use crate::{PushSubscriptions, StoreError, StoredPushSubscription};

#[derive(Debug)]
pub(crate) struct PushStatements {
    of_user: PreparedStatement,
    put: PreparedStatement,
    delete: PreparedStatement,
    owner: PreparedStatement,
    own: PreparedStatement,
    disown: PreparedStatement,
}

impl PushStatements {
    pub(crate) async fn prepare(session: &Session, ks: &str) -> Result<Self, StoreError> {
        let prepare = async |text: String| session.prepare(text).await.map_err(unavailable);
        Ok(Self {
            of_user: prepare(format!(
                "SELECT endpoint, p256dh, auth, registered_at FROM {ks}.push_subscriptions
                 WHERE user_id = ?"
            ))
            .await?,
            put: prepare(format!(
                "INSERT INTO {ks}.push_subscriptions
                 (user_id, endpoint, p256dh, auth, registered_at) VALUES (?, ?, ?, ?, ?)"
            ))
            .await?,
            delete: prepare(format!(
                "DELETE FROM {ks}.push_subscriptions WHERE user_id = ? AND endpoint = ?"
            ))
            .await?,
            owner: prepare(format!("SELECT user_id FROM {ks}.push_endpoints WHERE endpoint = ?"))
                .await?,
            own: prepare(format!(
                "INSERT INTO {ks}.push_endpoints (endpoint, user_id) VALUES (?, ?)"
            ))
            .await?,
            disown: prepare(format!(
                "DELETE FROM {ks}.push_endpoints WHERE endpoint = ? IF user_id = ?"
            ))
            .await?,
        })
    }
}

impl CqlStore {
    async fn delete_subscription(&self, user: &str, endpoint: &str) -> Result<(), StoreError> {
        let session = &self.shared.session;
        let statements = &self.shared.statements.push;
        session.execute_unpaged(&statements.delete, (user, endpoint)).await.map_err(unavailable)?;
        // Conditional: the endpoint may be someone else's by now.
        session.execute_unpaged(&statements.disown, (endpoint, user)).await.map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl PushSubscriptions for CqlStore {
    async fn put_push_subscription(
        &self,
        user: &UserId,
        subscription: &StoredPushSubscription,
        keep: usize,
    ) -> Result<(), StoreError> {
        let session = &self.shared.session;
        let statements = &self.shared.statements.push;
        let endpoint = subscription.endpoint.as_str();
        let owner = session
            .execute_unpaged(&statements.owner, (endpoint,))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?
            .maybe_first_row::<(Option<String>,)>()
            .map_err(unavailable)?
            .and_then(|(owner,)| owner);
        if let Some(previous) = owner.filter(|previous| previous != user.as_str()) {
            session
                .execute_unpaged(&statements.delete, (previous.as_str(), endpoint))
                .await
                .map_err(unavailable)?;
        }
        session
            .execute_unpaged(&statements.own, (endpoint, user.as_str()))
            .await
            .map_err(unavailable)?;
        let row = (
            user.as_str(),
            endpoint,
            subscription.p256dh.as_str(),
            subscription.auth.as_str(),
            subscription.registered_at.millis(),
        );
        session.execute_unpaged(&statements.put, row).await.map_err(unavailable)?;
        for stale in self.push_subscriptions(user).await?.iter().skip(keep) {
            self.delete_subscription(user.as_str(), &stale.endpoint).await?;
        }
        Ok(())
    }

    async fn remove_push_subscription(
        &self,
        user: &UserId,
        endpoint: &str,
    ) -> Result<bool, StoreError> {
        let had = self.push_subscriptions(user).await?.iter().any(|s| s.endpoint == endpoint);
        if had {
            self.delete_subscription(user.as_str(), endpoint).await?;
        }
        Ok(had)
    }

    async fn push_subscriptions(
        &self,
        user: &UserId,
    ) -> Result<Vec<StoredPushSubscription>, StoreError> {
        let result = self
            .shared
            .session
            .execute_unpaged(&self.shared.statements.push.of_user, (user.as_str(),))
            .await
            .map_err(unavailable)?
            .into_rows_result()
            .map_err(unavailable)?;
        let mut found = Vec::new();
        for row in result.rows::<(String, String, String, i64)>().map_err(unavailable)? {
            let (endpoint, p256dh, auth, at) = row.map_err(unavailable)?;
            found.push(StoredPushSubscription {
                endpoint,
                p256dh,
                auth,
                registered_at: Timestamp::from_millis(at),
            });
        }
        found.sort_by(|a, b| {
            b.registered_at.cmp(&a.registered_at).then_with(|| a.endpoint.cmp(&b.endpoint))
        });
        Ok(found)
    }
}
