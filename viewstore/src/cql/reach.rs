//! What `chat config check --connect` reports of the database.

use super::CqlConfig;
use super::connect::{datacenters, open_session};
use super::migrations::check_current;
use crate::StoreError;

/// What `chat config check --connect` says of the database: the nodes reached, their
/// datacenters, and whether the keyspace is migrated and readable by this role.
pub async fn reach(config: &CqlConfig) -> Result<String, StoreError> {
    let keyspace = config.checked_keyspace()?;
    let session = open_session(config).await?;
    let nodes = session.get_cluster_state().get_nodes_info().len();
    let mut report = format!(
        "{nodes} node(s) in datacenter(s) {} ({})",
        datacenters(&session).join(", "),
        config.security.describe()
    );
    match check_current(config, &session, keyspace).await {
        Ok(()) => report.push_str(&format!("; keyspace {keyspace} is migrated")),
        Err(StoreError::Refused(refusal)) => return Err(StoreError::Refused(refusal)),
        Err(other) => report.push_str(&format!("; {other}")),
    }
    Ok(report)
}
