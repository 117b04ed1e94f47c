//! The cluster commands in a binary built without the cluster backends (the default build,
//! which `chat dev` needs): each refuses in one line that says how to build them in.

use crate::cli::{ClusterArgs, MigrateArgs, NotifierArgs, ProjectorArgs, ReplayArgs, RoleArgs};

/// Why `command` cannot run here, and what to build instead.
fn absent(command: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "`chat {command}` needs the cluster backends (Kafka, CQL, S3), which this binary was \
         built without: build it with `cargo build --release -p chat --features cluster`"
    )
}

pub(crate) mod cluster {
    use super::{ClusterArgs, NotifierArgs, ProjectorArgs, RoleArgs, absent};

    pub(crate) async fn run_ingest(_args: RoleArgs) -> anyhow::Result<()> {
        Err(absent("ingest"))
    }

    pub(crate) async fn run_fanout(_args: RoleArgs) -> anyhow::Result<()> {
        Err(absent("fanout"))
    }

    pub(crate) async fn run_projector(_args: ProjectorArgs) -> anyhow::Result<()> {
        Err(absent("projector"))
    }

    pub(crate) async fn run_notifier(_args: NotifierArgs) -> anyhow::Result<()> {
        Err(absent("notifier"))
    }

    pub(crate) fn check_role(_args: &RoleArgs, role: &str) -> anyhow::Result<()> {
        Err(absent(&format!("config check {role}")))
    }

    pub(crate) fn check_notifier(_args: &NotifierArgs) -> anyhow::Result<()> {
        Err(absent("config check notifier"))
    }

    pub(crate) fn check_cluster(_args: &ClusterArgs) -> anyhow::Result<()> {
        Err(absent("config check"))
    }

    pub(crate) async fn dead_letters(
        _brokers: &str,
        _security: &crate::cli::KafkaSecurityArgs,
        _topic: &str,
        _role: &str,
    ) -> anyhow::Result<notifier::DeadLetters> {
        Err(absent("webhooks --kafka-brokers"))
    }

    pub(crate) async fn reach_backends(
        _cluster: &ClusterArgs,
    ) -> anyhow::Result<Vec<(&'static str, String, Result<String, String>)>> {
        Err(absent("config check --connect"))
    }
}

pub(crate) mod migrate {
    use super::{MigrateArgs, absent};

    pub(crate) async fn run(_args: MigrateArgs) -> anyhow::Result<()> {
        Err(absent("migrate"))
    }

    pub(crate) fn parse_replication(_text: &str) -> anyhow::Result<()> {
        Err(absent("config check migrate"))
    }
}

pub(crate) mod replay {
    use super::{ReplayArgs, absent};

    pub(crate) async fn run(_args: ReplayArgs) -> anyhow::Result<()> {
        Err(absent("replay"))
    }
}
