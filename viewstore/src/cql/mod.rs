//! The store on a CQL database: ScyllaDB in production, Apache Cassandra 5 in tests.
//!
//! Idempotence without read-before-write: every projection write carries a CQL timestamp
//! derived from the log (a view's applied offset, a watermark's offset), so the newest
//! state wins whatever order writes arrive in and re-applying one changes nothing. The
//! directory's compare-and-set steps are lightweight transactions (`IF ...`).

mod connect;
mod directory;
mod leases;
mod migrations;
mod projections;
mod push;
mod reach;
mod statements;

use std::sync::Arc;
use std::time::Duration;

use scylla::client::session::Session;

use crate::StoreError;

pub use connect::{CqlLogin, CqlSecurity, CqlSecuritySettings, CqlTls, SECURITY_VARIABLES};
pub use migrations::{MIGRATIONS, Replication, drop_keyspace, migrate};

pub(crate) use self::connect::open_session as session;
pub use self::connect::open_session;
pub use self::reach::reach;

use self::statements::Statements;

/// How to reach the database and which keyspace holds the chat.
#[derive(Debug, Clone)]
pub struct CqlConfig {
    /// `host:port` of one or more nodes.
    pub nodes: Vec<String>,
    pub keyspace: String,
    pub request_timeout: Duration,
    /// Credentials, TLS and the local datacenter.
    pub security: CqlSecurity,
}

impl CqlConfig {
    pub fn new(nodes: impl IntoIterator<Item = String>, keyspace: impl Into<String>) -> Self {
        Self {
            nodes: nodes.into_iter().collect(),
            keyspace: keyspace.into(),
            request_timeout: Duration::from_secs(10),
            security: CqlSecurity::default(),
        }
    }

    /// With the security the `CHAT_CQL_*` variables describe: for tools and tests that reach
    /// the database without the binary's command line.
    pub fn with_env_security(mut self) -> Result<Self, StoreError> {
        self.security = CqlSecuritySettings::from_env().resolve()?;
        Ok(self)
    }

    /// Keyspace names are interpolated into CQL, so only plain identifiers are accepted.
    fn checked_keyspace(&self) -> Result<&str, StoreError> {
        let name = self.keyspace.as_str();
        let plain = !name.is_empty()
            && name.len() <= 48
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if plain {
            Ok(name)
        } else {
            Err(StoreError::Config(format!(
                "keyspace {name:?} must be a lowercase identifier of at most 48 characters"
            )))
        }
    }
}

pub(crate) fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub session: Session,
    pub statements: Statements,
}

/// The directory, projections and read model on CQL.
#[derive(Debug, Clone)]
pub struct CqlStore {
    pub(crate) shared: Arc<Shared>,
}

impl CqlStore {
    /// Connects and prepares every statement. The keyspace must have been migrated.
    pub async fn connect(config: &CqlConfig) -> Result<Self, StoreError> {
        let keyspace = config.checked_keyspace()?;
        let session = session(config).await?;
        migrations::check_current(config, &session, keyspace).await?;
        let statements = Statements::prepare(&session, keyspace).await?;
        Ok(Self { shared: Arc::new(Shared { session, statements }) })
    }
}
