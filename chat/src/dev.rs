//! `chat dev`: every role in one process, on the embedded log and store under the data
//! directory, serving the HTTP API, both WebSocket protocols and the web app.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use auth::Caller;
use eventlog::MemorySignalBus;
use eventlog::embedded::EmbeddedLog;
use ingest::Ingest;
use ingest::writer::WriterConfig;
use schemas::UserId;
use schemas::http::OpenConversationRequest;
use tokio_util::sync::CancellationToken;
use viewstore::embedded::EmbeddedStore;

use crate::cli::DevArgs;
use crate::telemetry::metrics::{Consumer, Metrics, Parts};
use crate::web::DevTokens;
use crate::wiring::{
    Backends, fanout_config, ingest_router, node_name, spawn_notifier, spawn_projector,
    start_fanout,
};
use crate::{health, jwt, server, web};

const SIGNAL_BUFFER: usize = 16 * 1024;

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let (verifier, key_source) = jwt::verifier(&args.jwt, Some(&data_dir))?;
    let verifier = Arc::new(verifier);
    let dev_tokens = dev_tokens(&args)?;
    let log =
        EmbeddedLog::open(&data_dir.join("log.db"), args.partitions).context("opening the log")?;
    let store = EmbeddedStore::open(&data_dir.join("store.db")).context("opening the store")?;
    let backends = Backends::new(
        Arc::new(log),
        Arc::new(MemorySignalBus::new(SIGNAL_BUFFER)),
        Arc::new(store),
    );
    let listener = server::bind(args.listen, args.limits.socket_send_buffer)?;
    let address = listener.local_addr().context("reading the bound address")?;
    let internal_listener = server::bind(args.internal_listen, None)?;
    let internal_address = internal_listener.local_addr().context("reading the bound address")?;

    let shutdown = CancellationToken::new();
    server::cancel_on_signal(shutdown.clone());
    let node = node_name("dev");
    let writer = WriterConfig {
        node: node.clone(),
        address: address.to_string(),
        group: Some("writers".into()),
        timing: args.write.timing(),
        forward_key: None,
        route_wait: Duration::from_secs(5),
    };
    let objects = std::path::absolute(data_dir.join("objects"))
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    let attachments = args.files.open(Some(format!("file://{}", objects.display())))?;
    let sweeper = attachments.clone().map(|attachments| {
        ingest::sweep_unsent(attachments, args.files.unsent_upload_ttl, shutdown.clone())
    });
    let (ingest, _, writers) =
        backends.start_ingest(&args.limits, writer, attachments, &shutdown).await?;
    let projector_config = projector::ProjectorConfig::default();
    let joined = Arc::clone(&projector_config.joined);
    let projector = spawn_projector(&backends, projector_config, shutdown.clone());
    let mut origins =
        vec![format!("http://{address}"), format!("http://localhost:{}", address.port())];
    origins.extend(args.allowed_origins.iter().cloned());
    let fanout = fanout_config(&args.limits, origins);
    let (sockets, hub, hub_task) =
        start_fanout(&backends, &ingest, &verifier, fanout, &shutdown).await?;
    let parts = Parts { ingest: true, fanout: true, projector: true, notifier: true };
    let (push, notifier, notified) = notifications(&args, &backends, &node, &shutdown)?;
    let consumers = vec![
        Consumer::Projector(Arc::clone(&backends.read_model)),
        Consumer::Fanout(hub),
        Consumer::Notifier(notified),
    ];
    let metrics = Metrics::new("dev", parts, Arc::clone(&backends.log), consumers);
    let mut app = ingest_router(&ingest, &verifier, args.files.limits(), Some(push))
        .merge(sockets)
        .merge(web::router());
    if let Some(tokens) = &dev_tokens {
        app = app.merge(web::dev_token_router(tokens.clone()));
    }
    let internal = health::router(Some(joined), &shutdown).merge(metrics.router());
    let public = crate::wiring::site(listener, app);
    let internal = crate::wiring::site(internal_listener, internal);

    let demo = if args.no_demo { None } else { Some(open_demo(&ingest).await?) };
    let addresses = (address.to_string(), internal_address.to_string());
    print_banner(&args, &addresses, &key_source, demo, dev_tokens.as_ref())?;
    let limits = args.http.limits();
    let tasks = [projector, hub_task, writers, notifier].into_iter().chain(sweeper).collect();
    server::serve(Some(public), internal, &limits, shutdown, args.limits.drain, tasks).await
}

/// The parked webhook events of the `chat dev` in `data_dir`.
pub(crate) fn dead_letters(data_dir: &std::path::Path) -> anyhow::Result<notifier::DeadLetters> {
    let path = data_dir.join("dead-letters.db");
    notifier::DeadLetters::in_file(&path)
        .map_err(|error| anyhow::anyhow!("opening the dead letters {}: {error}", path.display()))
}

/// Web Push registration for the API, and the notifier running beside the other roles (with
/// the data directory's VAPID key unless one is given).
fn notifications(
    args: &DevArgs,
    backends: &Backends,
    node: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<(ingest::PushRegistry, tokio::task::JoinHandle<()>, Arc<notifier::Progress>)> {
    let notify = &args.notify;
    let key = notify.api.vapid_key(Some(&args.data_dir))?.context("no VAPID key")?;
    let registry = notify
        .api
        .registry(Some(&key), Arc::clone(&backends.subscriptions))
        .context("no VAPID key")?;
    let mut config = notifier::NotifierConfig::new(format!("{node}-notifier"));
    config.delay = notify.notify_delay;
    config.horizon = notify.horizon();
    config.presence_ttl = args.limits.presence_ttl;
    config.push = Some(notify.push(key, true)?);
    config.webhook = notify.webhook.settings()?;
    config.dead_letters = Some(dead_letters(&args.data_dir)?);
    let progress = Arc::clone(&config.progress);
    Ok((registry, spawn_notifier(backends, config, shutdown.clone()), progress))
}

/// What `/dev/token` and the banner may mint. With the generated dev secret, anything (its
/// tokens are good on this data directory only); with an operator's secret, nothing unless
/// `--serve-dev-tokens`, and then never the service role; with RS256 keys, nothing.
fn dev_tokens(args: &DevArgs) -> anyhow::Result<Option<DevTokens>> {
    let jwt = &args.jwt;
    if jwt.jwt_public_key_file.is_some() || jwt.jwt_jwks_file.is_some() {
        return Ok(None);
    }
    match jwt.secret()? {
        None => Ok(Some(DevTokens { secret: jwt::dev_secret(&args.data_dir)?, service: true })),
        Some(secret) if args.serve_dev_tokens => Ok(Some(DevTokens { secret, service: false })),
        Some(_) => Ok(None),
    }
}

/// Opens (or finds) the demo conversation between alice (client) and bob (worker).
async fn open_demo(ingest: &Ingest) -> anyhow::Result<u64> {
    let service = Caller { user_id: UserId::new("jobs")?, name: "Jobs".into(), service: true };
    let request = OpenConversationRequest {
        client_id: UserId::new("alice")?,
        worker_id: UserId::new("bob")?,
        client_name: Some("Alice".into()),
        worker_name: Some("Bob".into()),
    };
    let (record, _) = ingest
        .open_conversation(&service, "demo", request)
        .await
        .map_err(|error| anyhow::anyhow!("opening the demo conversation: {error}"))?;
    Ok(record.conversation_id.get())
}

fn print_banner(
    args: &DevArgs,
    (address, internal): &(String, String),
    key_source: &str,
    demo: Option<u64>,
    dev_tokens: Option<&DevTokens>,
) -> anyhow::Result<()> {
    let data = args.data_dir.display();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "chat dev is serving on http://{address} (data in {data}, tokens: {key_source})"
    )?;
    writeln!(out, "  web app   http://{address}/")?;
    writeln!(out, "  HTTP API  http://{address}/v1/openapi.json")?;
    writeln!(
        out,
        "  internal  http://{internal}/metrics, /healthz, /readyz (not on the public address)"
    )?;
    writeln!(out, "  tokens    chat token --sub alice --name Alice --data-dir {data}")?;
    match dev_tokens {
        Some(DevTokens { service: true, .. }) => writeln!(
            out,
            "  /dev/token mints tokens for anyone, the service role included (generated dev secret)"
        )?,
        Some(DevTokens { service: false, .. }) => writeln!(
            out,
            "  /dev/token mints user tokens signed with CHAT_JWT_SECRET (--serve-dev-tokens); never the service role"
        )?,
        None => writeln!(
            out,
            "  /dev/token off: tokens are not signed with the generated dev secret (see --serve-dev-tokens)"
        )?,
    }
    if let (Some(conversation), Some(DevTokens { secret, .. })) = (demo, dev_tokens) {
        writeln!(
            out,
            "  demo      conversation {conversation} (job \"demo\"): alice (client) and bob (worker)"
        )?;
        for (user, name) in [("alice", "Alice"), ("bob", "Bob")] {
            let token = auth::mint_hs256(secret.as_bytes(), user, Some(name), false, 86_400)?;
            writeln!(
                out,
                "            websocat 'ws://{address}/ws/chat/{conversation}/?token={token}'"
            )?;
        }
        writeln!(out, "            then type: {{\"message\": \"hello\", \"type\": \"TEXT\"}}")?;
    }
    out.flush()?;
    Ok(())
}
