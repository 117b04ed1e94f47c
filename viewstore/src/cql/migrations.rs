//! Versioned schema migrations, applied by `chat migrate` and recorded in the keyspace.
//! Each migration is a list of idempotent statements; `{ks}` stands for the keyspace.

use scylla::client::session::Session;

use super::connect::not_permitted;
use super::{CqlConfig, session, unavailable};
use crate::StoreError;

/// How the keyspace is replicated.
#[derive(Debug, Clone)]
pub enum Replication {
    /// One datacenter (development, tests).
    Simple { factor: u32 },
    /// Production: replicas per datacenter, e.g. `[("dc1", 3)]`.
    NetworkTopology(Vec<(String, u32)>),
}

impl Replication {
    /// A bare factor in a deployment that names its datacenter means "this many replicas
    /// there": requests are routed to that datacenter only, and a SimpleStrategy keyspace
    /// could put a token's replicas elsewhere and leave it no local replica at all.
    fn in_datacenter(&self, local_dc: Option<&str>) -> Self {
        match (self, local_dc) {
            (Self::Simple { factor }, Some(dc)) => {
                Self::NetworkTopology(vec![(dc.to_owned(), *factor)])
            }
            _ => self.clone(),
        }
    }

    fn cql(&self) -> String {
        match self {
            Self::Simple { factor } => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
            }
            Self::NetworkTopology(datacenters) => {
                let parts: Vec<String> = datacenters
                    .iter()
                    .filter(|(name, _)| {
                        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    })
                    .map(|(name, factor)| format!("'{name}': {factor}"))
                    .collect();
                format!("{{'class': 'NetworkTopologyStrategy', {}}}", parts.join(", "))
            }
        }
    }
}

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.version, self.name)
    }
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "directory and projections",
        statements: &[
            // Directory (written by ingest, with lightweight transactions).
            "CREATE TABLE IF NOT EXISTS {ks}.conversations_by_job (
            job_id text PRIMARY KEY, conversation_id bigint)",
            "CREATE TABLE IF NOT EXISTS {ks}.conversations (
            conversation_id bigint PRIMARY KEY, job_id text,
            client_id text, client_name text, worker_id text, worker_name text,
            created_at timestamp, started boolean)",
            // Projections (written by the projector, timestamps derived from log offsets).
            "CREATE TABLE IF NOT EXISTS {ks}.views (
            conversation_id bigint PRIMARY KEY, applied_offset bigint, body text)",
            "CREATE TABLE IF NOT EXISTS {ks}.inbox (
            user_id text, last_activity timestamp, conversation_id bigint,
            PRIMARY KEY (user_id, last_activity, conversation_id))
         WITH CLUSTERING ORDER BY (last_activity DESC, conversation_id DESC)",
            "CREATE TABLE IF NOT EXISTS {ks}.inbox_positions (
            user_id text, conversation_id bigint, last_activity timestamp,
            PRIMARY KEY (user_id, conversation_id))",
            // Message bodies in partitions of at most 1000 messages of one conversation.
            "CREATE TABLE IF NOT EXISTS {ks}.messages (
            conversation_id bigint, bucket int, message_id bigint, body text,
            PRIMARY KEY ((conversation_id, bucket), message_id))",
            "CREATE TABLE IF NOT EXISTS {ks}.message_index (
            conversation_id bigint, message_id bigint,
            total bigint, by_client bigint, by_worker bigint,
            PRIMARY KEY (conversation_id, message_id))",
            "CREATE TABLE IF NOT EXISTS {ks}.message_keys (
            conversation_id bigint, key text, message_id bigint,
            PRIMARY KEY (conversation_id, key))",
            "CREATE TABLE IF NOT EXISTS {ks}.watermarks (partition int PRIMARY KEY, offset bigint)",
        ],
    },
    Migration {
        version: 2,
        name: "writer leases replace idempotency claims",
        statements: &[
            // One Paxos partition per log partition: leases never contend with each other.
            "CREATE TABLE IF NOT EXISTS {ks}.partition_writers (
            partition int PRIMARY KEY, node text, address text, version bigint)",
            "DROP TABLE IF EXISTS {ks}.idempotency_keys",
        ],
    },
    Migration {
        version: 3,
        name: "push subscriptions",
        statements: &[
            // Read per user by the notifier; the second table gives an endpoint one user.
            "CREATE TABLE IF NOT EXISTS {ks}.push_subscriptions (
            user_id text, endpoint text, p256dh text, auth text, registered_at bigint,
            PRIMARY KEY (user_id, endpoint))",
            "CREATE TABLE IF NOT EXISTS {ks}.push_endpoints (
            endpoint text PRIMARY KEY, user_id text)",
        ],
    },
    Migration {
        version: 4,
        name: "message changes",
        statements: &[
            // Edits and deletions by position, read by resuming clients. Message bodies are
            // written at a CQL timestamp from their revision from now on, so the newest
            // change wins whatever order the writes land in.
            "CREATE TABLE IF NOT EXISTS {ks}.message_changes (
            conversation_id bigint, position bigint, body text,
            PRIMARY KEY (conversation_id, position))",
        ],
    },
];

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (
    version int PRIMARY KEY, name text, applied_at timestamp)";

fn expand(statement: &str, keyspace: &str) -> String {
    statement.replace("{ks}", keyspace)
}

/// Creates the keyspace and applies every migration not yet recorded. Returns the versions
/// it applied. Safe to run again, and from several processes at once (each statement is
/// idempotent).
pub async fn migrate(
    config: &CqlConfig,
    replication: &Replication,
) -> Result<Vec<i32>, StoreError> {
    let keyspace = config.checked_keyspace()?.to_owned();
    let session = session(config).await?;
    // A role without the rights to create is told so by name, not retried.
    let failed = |error: scylla::errors::ExecutionError| {
        not_permitted(config, &error.to_string()).unwrap_or_else(|| unavailable(error))
    };
    let replication = replication.in_datacenter(config.security.local_dc.as_deref());
    let create = format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}",
        replication.cql()
    );
    session.query_unpaged(create, ()).await.map_err(failed)?;
    session.query_unpaged(expand(LEDGER, &keyspace), ()).await.map_err(failed)?;
    agree(&session).await?;
    let applied = applied_versions(&session, &keyspace).await?;
    let mut newly = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        for statement in migration.statements {
            session.query_unpaged(expand(statement, &keyspace), ()).await.map_err(failed)?;
        }
        agree(&session).await?;
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {keyspace}.schema_migrations (version, name, applied_at)
                     VALUES (?, ?, toTimestamp(now()))"
                ),
                (migration.version, migration.name),
            )
            .await
            .map_err(unavailable)?;
        newly.push(migration.version);
    }
    Ok(newly)
}

async fn agree(session: &Session) -> Result<(), StoreError> {
    session.await_schema_agreement().await.map(drop).map_err(unavailable)
}

async fn applied_versions(session: &Session, keyspace: &str) -> Result<Vec<i32>, StoreError> {
    let result = session
        .query_unpaged(format!("SELECT version FROM {keyspace}.schema_migrations"), ())
        .await
        .map_err(unavailable)?
        .into_rows_result()
        .map_err(unavailable)?;
    let versions = result.rows::<(i32,)>().map_err(unavailable)?;
    versions.map(|row| row.map(|(version,)| version).map_err(unavailable)).collect()
}

/// Refuses to run against a keyspace that lacks migrations this build needs, or that the
/// role may not read.
pub(super) async fn check_current(
    config: &CqlConfig,
    session: &Session,
    keyspace: &str,
) -> Result<(), StoreError> {
    let applied = applied_versions(session, keyspace).await.map_err(|error| {
        not_permitted(config, &error.to_string()).unwrap_or_else(|| {
            StoreError::Config(format!(
                "keyspace {keyspace} is not migrated ({error}); run `chat migrate`"
            ))
        })
    })?;
    let missing: Vec<i32> =
        MIGRATIONS.iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "keyspace {keyspace} lacks migrations {missing:?}; run `chat migrate`"
        )))
    }
}

/// Drops a keyspace if it exists (for `chat replay`, which rebuilds into a scratch
/// keyspace). Asks first: a role that may only create keyspaces (and so owns those it
/// made) has no right to drop one that does not exist.
pub async fn drop_keyspace(config: &CqlConfig) -> Result<(), StoreError> {
    let keyspace = config.checked_keyspace()?;
    let session = session(config).await?;
    let exists = session
        .query_unpaged(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .map_err(unavailable)?
        .into_rows_result()
        .map_err(unavailable)?
        .rows_num()
        > 0;
    if !exists {
        return Ok(());
    }
    session.query_unpaged(format!("DROP KEYSPACE {keyspace}"), ()).await.map_err(|error| {
        not_permitted(config, &error.to_string()).unwrap_or_else(|| unavailable(error))
    })?;
    agree(&session).await
}
