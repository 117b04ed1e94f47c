//! The roles as separate processes on Kafka + CQL: `chat ingest`, `chat fanout`,
//! `chat projector`. Each serves `/healthz` and `/readyz` and drains on SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use eventlog::kafka::{KafkaConfig, KafkaEventLog};
use eventlog::kafka_signals::KafkaSignalBus;
use ingest::writer::{ForwardKey, WriterConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use viewstore::cql::{CqlConfig, CqlStore};

use crate::cli::{ClusterArgs, HttpArgs, KafkaSecurityArgs, NotifierArgs, ProjectorArgs, RoleArgs};
use crate::telemetry::metrics::{Consumer, Metrics, Parts};
use crate::wiring::{
    Backends, fanout_config, ingest_router, node_name, site, spawn_notifier, spawn_projector,
    start_fanout,
};
use crate::{health, jwt, server};

/// How long a keyed send waits for its partition to have a reachable writer (a handover
/// takes a moment; a takeover after a crash can take a lease period, and then the client
/// is told to retry).
const ROUTE_WAIT: Duration = Duration::from_secs(5);

/// The Kafka client settings of `role`, its security read and checked (password files
/// read, every librdkafka property taken) before anything connects.
pub(crate) fn kafka_config(
    args: &ClusterArgs,
    topic: &str,
    role: &str,
) -> anyhow::Result<KafkaConfig> {
    kafka_client(&args.kafka_brokers, &args.kafka_security, topic, role)
}

/// [`kafka_config`] for tools that know only the brokers and their security.
pub(crate) fn kafka_client(
    brokers: &str,
    security: &KafkaSecurityArgs,
    topic: &str,
    role: &str,
) -> anyhow::Result<KafkaConfig> {
    let mut config = KafkaConfig::new(brokers.to_owned(), topic);
    config.client_id = format!("chat-{role}");
    config.security = security.settings().resolve()?;
    config.check()?;
    Ok(config)
}

/// Where the notifier parks webhook events the receiver did not take.
pub(crate) fn dead_letter_topic(args: &ClusterArgs) -> String {
    format!("{}.dead-letters", args.topic)
}

/// The dead-letter log on Kafka, beside `events_topic`.
pub(crate) async fn dead_letters(
    brokers: &str,
    security: &KafkaSecurityArgs,
    events_topic: &str,
    role: &str,
) -> anyhow::Result<notifier::DeadLetters> {
    let topic = format!("{events_topic}.dead-letters");
    let log = KafkaEventLog::connect(kafka_client(brokers, security, &topic, role)?)
        .await
        .with_context(|| format!("connecting to the dead-letter topic {topic}"))?;
    Ok(notifier::DeadLetters::on_log(Arc::new(log)))
}

/// The CQL session settings, credentials read and checked.
pub(crate) fn cql_config(args: &ClusterArgs, keyspace: &str) -> anyhow::Result<CqlConfig> {
    let mut config = CqlConfig::new(args.cql_nodes.clone(), keyspace);
    config.security = args.cql_security.settings().resolve()?;
    Ok(config)
}

/// What every cluster command checks before connecting: both backends' settings.
pub(crate) fn check_cluster(args: &ClusterArgs) -> anyhow::Result<()> {
    kafka_config(args, &args.topic, "check")?;
    cql_config(args, &args.keyspace)?;
    Ok(())
}

/// Connects to Kafka and CQL; fails with one clear line when either is missing or not
/// migrated. `instance` names this replica in consumer groups (static membership).
pub(crate) async fn connect(
    args: &ClusterArgs,
    role: &str,
    instance: Option<String>,
    append_timeout: Option<Duration>,
) -> anyhow::Result<Backends> {
    let mut events = kafka_config(args, &args.topic, role)?;
    events.group_instance = instance;
    if let Some(timeout) = append_timeout {
        events.append_timeout = timeout;
    }
    let log = KafkaEventLog::connect(events)
        .await
        .with_context(|| format!("connecting to Kafka at {}", args.kafka_brokers))?;
    let signals = KafkaSignalBus::connect(kafka_config(args, &args.signals_topic, role)?)
        .context("connecting the signal bus")?;
    let store = CqlStore::connect(&cql_config(args, &args.keyspace)?)
        .await
        .with_context(|| format!("connecting to CQL at {:?}", args.cql_nodes))?;
    Ok(Backends::new(Arc::new(log), Arc::new(signals), Arc::new(store)))
}

/// A role's public site (the projector has none) and internal one: listener and routes.
type Sites = (Option<(TcpListener, Router)>, (TcpListener, Router));

/// How every role ends its start: its sites, its banner, then serving until SIGTERM and its
/// drain.
async fn serve_role(
    role: &str,
    (public, (internal_listener, internal)): Sites,
    http: &HttpArgs,
    drain: Duration,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
) -> anyhow::Result<()> {
    let public = public.map(|(listener, routes)| site(listener, routes));
    let internal = site(internal_listener, internal);
    let public_address = public.as_ref().map(|site| site.listener.local_addr()).transpose()?;
    announce(role, public_address, internal.listener.local_addr()?)?;
    server::serve(public, internal, &http.limits(), shutdown, drain, tasks).await
}

/// The banner: where the role serves (the projector only has its internal site).
fn announce(role: &str, public: Option<SocketAddr>, internal: SocketAddr) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match public {
        Some(public) => writeln!(
            out,
            "chat {role} is serving on http://{public} (internal: http://{internal})"
        )?,
        None => writeln!(out, "chat {role} is serving on http://{internal} (internal)")?,
    }
    out.flush()?;
    Ok(())
}

/// The key forwarded keyed sends are signed with.
fn forward_key(args: &RoleArgs) -> anyhow::Result<ForwardKey> {
    let cluster_secret = match (&args.cluster_secret, &args.cluster_secret_file) {
        (Some(secret), _) => Some(secret.clone()),
        (None, Some(file)) => Some(crate::cli::read_secret_file("CHAT_CLUSTER_SECRET_FILE", file)?),
        (None, None) => None,
    };
    let key = match (&cluster_secret, &args.jwt.secret()?) {
        (Some(secret), _) => ForwardKey::new(secret.as_bytes()),
        (None, Some(token_secret)) => {
            ForwardKey::derived_from_token_secret(token_secret.as_bytes())
        }
        (None, None) => bail!(
            "CHAT_CLUSTER_SECRET(_FILE) is required when tokens are verified with a public \
             key: nodes sign the keyed sends they forward to each other with it"
        ),
    };
    let key = key.map_err(anyhow::Error::msg)?;
    let Some(file) = &args.cluster_secret_accepted_file else {
        return Ok(key);
    };
    let accepted = crate::cli::read_secret_file("CHAT_CLUSTER_SECRET_ACCEPTED_FILE", file)?;
    let accepted = ForwardKey::new(accepted.as_bytes())
        .map_err(|error| anyhow::anyhow!("CHAT_CLUSTER_SECRET_ACCEPTED_FILE: {error}"))?;
    Ok(key.also_accepting(&accepted))
}

/// Refuses, before anything is connected or bound, an ingest node other nodes could not
/// forward keyed sends to.
fn check_advertise(args: &RoleArgs) -> anyhow::Result<()> {
    if args.advertise.is_none() && args.internal_listen.ip().is_unspecified() {
        bail!(
            "--internal-listen {} names no address other nodes can reach; set --advertise \
             (CHAT_ADVERTISE) to this node's host:port",
            args.internal_listen
        );
    }
    // Port 0 on both is two ports the system picks, never the same one.
    if args.internal_listen == args.listen && args.listen.port() != 0 {
        bail!(
            "--internal-listen and --listen are both {}: metrics, probes and the routes \
             between nodes must not be served where the public is",
            args.listen
        );
    }
    Ok(())
}

/// This node's part in writing keyed sends: ingest nodes join the writer group (and are
/// reached at their advertised internal address), fanout nodes only forward.
fn writer_config(args: &RoleArgs, role: &str, bound: SocketAddr) -> anyhow::Result<WriterConfig> {
    let member = role == "ingest";
    if member {
        check_advertise(args)?;
    }
    let address = args.advertise.clone().unwrap_or_else(|| bound.to_string());
    let group =
        args.writer_group.clone().unwrap_or_else(|| format!("{}.writers", args.cluster.topic));
    Ok(WriterConfig {
        node: node_name(role),
        address,
        group: member.then_some(group),
        timing: args.write.timing(),
        forward_key: Some(forward_key(args)?),
        route_wait: ROUTE_WAIT,
    })
}

/// What `role` checks before connecting anywhere (also `chat config check`).
pub(crate) fn check_role(args: &RoleArgs, role: &str) -> anyhow::Result<()> {
    check_cluster(&args.cluster)?;
    jwt::verifier(&args.jwt, None)?;
    forward_key(args)?;
    args.write.timing().check(args.write.append_timeout)?;
    if role == "ingest" {
        check_advertise(args)?;
        args.push.vapid_key(None)?;
    }
    Ok(())
}

pub(crate) async fn run_ingest(args: RoleArgs) -> anyhow::Result<()> {
    check_role(&args, "ingest")?;
    let (verifier, _) = jwt::verifier(&args.jwt, None)?;
    let verifier = Arc::new(verifier);
    let forward = forward_key(&args)?;
    let backends = connect(&args.cluster, "ingest", None, Some(args.write.append_timeout)).await?;
    let listener = server::bind(args.listen, args.limits.socket_send_buffer)?;
    let internal_listener = server::bind(args.internal_listen, None)?;
    let writer = writer_config(&args, "ingest", internal_listener.local_addr()?)?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    let attachments = args.files.open(None)?;
    let sweeper = attachments.clone().map(|attachments| {
        ingest::sweep_unsent(attachments, args.files.unsent_upload_ttl, shutdown.clone())
    });
    let (ingest, writers, writers_task) =
        backends.start_ingest(&args.limits, writer, attachments, &shutdown).await?;
    let parts = Parts { ingest: true, ..Parts::default() };
    let metrics = Metrics::new("ingest", parts, Arc::clone(&backends.log), Vec::new());
    let key = args.push.vapid_key(None)?;
    let push = args.push.registry(key.as_ref(), Arc::clone(&backends.subscriptions));
    let public = ingest_router(&ingest, &verifier, args.files.limits(), push);
    // Leases are handed back while this node still answers forwarded sends with "not
    // here": the internal site closes after the writers' task ends.
    let internal = ingest::writer::forward_router(writers, forward)
        .merge(health::router(None, &shutdown))
        .merge(metrics.router());
    let tasks = std::iter::once(writers_task).chain(sweeper).collect();
    let sites = (Some((listener, public)), (internal_listener, internal));
    serve_role("ingest", sites, &args.http, args.limits.drain, shutdown, tasks).await
}

pub(crate) async fn run_fanout(args: RoleArgs) -> anyhow::Result<()> {
    check_role(&args, "fanout")?;
    let (verifier, _) = jwt::verifier(&args.jwt, None)?;
    let verifier = Arc::new(verifier);
    let backends = connect(&args.cluster, "fanout", None, Some(args.write.append_timeout)).await?;
    let listener = server::bind(args.listen, args.limits.socket_send_buffer)?;
    let internal_listener = server::bind(args.internal_listen, None)?;
    let writer = writer_config(&args, "fanout", internal_listener.local_addr()?)?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    // Native sends may carry uploads, which the fanout's ingest describes from the store.
    let attachments = args.files.open(None)?;
    let (ingest, _, writers_task) =
        backends.start_ingest(&args.limits, writer, attachments, &shutdown).await?;
    let (sockets, hub, hub_task) = start_fanout(
        &backends,
        &ingest,
        &verifier,
        fanout_config(&args.limits, args.allowed_origins.clone()),
        &shutdown,
    )
    .await?;
    let parts = Parts { fanout: true, ..Parts::default() };
    let consumers = vec![Consumer::Fanout(hub)];
    let metrics = Metrics::new("fanout", parts, Arc::clone(&backends.log), consumers);
    let internal = health::router(None, &shutdown).merge(metrics.router());
    let tasks = vec![hub_task, writers_task];
    let sites = (Some((listener, sockets)), (internal_listener, internal));
    serve_role("fanout", sites, &args.http, args.limits.drain, shutdown, tasks).await
}

pub(crate) async fn run_projector(args: ProjectorArgs) -> anyhow::Result<()> {
    check_cluster(&args.cluster)?;
    let backends = connect(&args.cluster, "projector", args.instance.clone(), None).await?;
    let internal_listener = server::bind(args.internal_listen, None)?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    let config = projector::ProjectorConfig {
        group: args.group.clone(),
        batch_size: args.batch as usize,
        ..projector::ProjectorConfig::default()
    };
    let joined = Arc::clone(&config.joined);
    let task = spawn_projector(&backends, config, shutdown.clone());
    let parts = Parts { projector: true, ..Parts::default() };
    let consumers = vec![Consumer::Projector(Arc::clone(&backends.read_model))];
    let metrics = Metrics::new("projector", parts, Arc::clone(&backends.log), consumers);
    let internal = health::router(Some(joined), &shutdown).merge(metrics.router());
    let sites = (None, (internal_listener, internal));
    serve_role("projector", sites, &args.http, args.drain, shutdown, vec![task]).await
}

/// What the notifier checks before connecting anywhere (also `chat config check`).
pub(crate) fn check_notifier(args: &NotifierArgs) -> anyhow::Result<notifier::NotifierConfig> {
    check_cluster(&args.cluster)?;
    let notify = &args.notify;
    let mut config = notifier::NotifierConfig::new(node_name("notifier"));
    config.group = args.group.clone();
    config.delay = notify.notify_delay;
    config.horizon = notify.horizon();
    config.presence_ttl = args.presence_ttl;
    config.push = notify.api.vapid_key(None)?.map(|key| notify.push(key, false)).transpose()?;
    config.webhook = notify.webhook.settings()?;
    if config.push.is_none() && config.webhook.is_none() {
        bail!(
            "the notifier has nothing to send: set CHAT_VAPID_KEY_FILE (Web Push) or \
             CHAT_WEBHOOK_URL (webhooks), or both"
        );
    }
    Ok(config)
}

pub(crate) async fn run_notifier(args: NotifierArgs) -> anyhow::Result<()> {
    let mut config = check_notifier(&args)?;
    let backends = connect(&args.cluster, "notifier", None, None).await?;
    if config.webhook.is_some() {
        let cluster = &args.cluster;
        let parked = dead_letters(
            &cluster.kafka_brokers,
            &cluster.kafka_security,
            &cluster.topic,
            "notifier",
        );
        config.dead_letters = Some(parked.await?);
    }
    let internal_listener = server::bind(args.internal_listen, None)?;
    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    let consumers = vec![Consumer::Notifier(Arc::clone(&config.progress))];
    let task = spawn_notifier(&backends, config, shutdown.clone());
    let parts = Parts { notifier: true, ..Parts::default() };
    let metrics = Metrics::new("notifier", parts, Arc::clone(&backends.log), consumers);
    let internal = health::router(None, &shutdown).merge(metrics.router());
    let sites = (None, (internal_listener, internal));
    serve_role("notifier", sites, &args.http, args.drain, shutdown, vec![task]).await
}

/// How long each backend gets to answer: a refusal ends sooner.
const REACH_DEADLINE: Duration = Duration::from_secs(30);

/// Each backend reached with `cluster`'s settings: its name, address, and what it answered
/// (or why not).
pub(crate) type Reached = Vec<(&'static str, String, Result<String, String>)>;

/// Reaches Kafka and the database, both at once.
pub(crate) async fn reach_backends(cluster: &ClusterArgs) -> anyhow::Result<Reached> {
    let kafka = async {
        let config = kafka_config(cluster, &cluster.topic, "check")?;
        let answer = tokio::time::timeout(REACH_DEADLINE, eventlog::kafka::reach(&config)).await;
        anyhow::Ok(
            answer
                .map_err(|_| "no answer within 30 s".to_owned())
                .and_then(|reached| reached.map_err(|error| error.to_string())),
        )
    };
    let cql = async {
        let config = cql_config(cluster, &cluster.keyspace)?;
        let answer = tokio::time::timeout(REACH_DEADLINE, viewstore::cql::reach(&config)).await;
        anyhow::Ok(
            answer
                .map_err(|_| "no answer within 30 s".to_owned())
                .and_then(|reached| reached.map_err(|error| error.to_string())),
        )
    };
    let (kafka, cql) = tokio::join!(kafka, cql);
    Ok(vec![
        ("kafka", cluster.kafka_brokers.clone(), kafka?),
        ("cql", cluster.cql_nodes.join(","), cql?),
    ])
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use crate::cli::Cli;

    /// Tools and tests read the security settings from the environment through the
    /// libraries; the roles through their flags. Both must know the same variables.
    #[test]
    fn the_libraries_read_the_variables_the_flags_take() {
        let command = Cli::command();
        let Some(ingest) = command.find_subcommand("ingest") else { panic!("no ingest command") };
        let variables: Vec<String> = ingest
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect();
        let taken = |prefix: &str, except: &str| {
            let mut names: Vec<&str> = variables
                .iter()
                .map(String::as_str)
                .filter(|name| name.starts_with(prefix) && *name != except)
                .collect();
            names.sort_unstable();
            names
        };
        let sorted = |list: &[&'static str]| {
            let mut names = list.to_vec();
            names.sort_unstable();
            names
        };
        assert_eq!(
            taken("CHAT_KAFKA_", "CHAT_KAFKA_BROKERS"),
            sorted(&eventlog::kafka_security::SECURITY_VARIABLES)
        );
        assert_eq!(
            taken("CHAT_CQL_", "CHAT_CQL_NODES"),
            sorted(&viewstore::cql::SECURITY_VARIABLES)
        );
    }
}
