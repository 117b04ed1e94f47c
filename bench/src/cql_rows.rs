//! The baseline for the projector: a plain writer of the rows the projector writes, with the
//! same driver, on the same tables (a scratch keyspace made by the same migrations). Per
//! message it writes the message body, its index entry and its key; per conversation and
//! batch, the view and both participants' inbox moves (read the old position, delete the
//! old row, write the new one and the position), then the batch's watermark; up to 128
//! writes in flight, in batches of the projector's size. No log, no fold, no decoding.

use std::time::Instant;

use futures_util::{TryStreamExt, stream};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use serde_json::{Value, json};
use viewstore::cql::{CqlConfig, Replication, drop_keyspace, migrate};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CqlRowsArgs {
    #[arg(long, env = "CHAT_CQL_NODES", value_delimiter = ',')]
    cql_nodes: Vec<String>,
    /// Messages to write.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Conversations they are spread over.
    #[arg(long, default_value_t = 200)]
    conversations: usize,
    /// Messages per batch (the projector's `CHAT_PROJECTOR_BATCH`).
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    #[arg(long, default_value = "")]
    label: String,
}

const IN_FLIGHT: usize = 128;

struct Statements {
    message: PreparedStatement,
    index: PreparedStatement,
    key: PreparedStatement,
    view: PreparedStatement,
    position_get: PreparedStatement,
    inbox_delete: PreparedStatement,
    position_put: PreparedStatement,
    inbox_put: PreparedStatement,
    watermark: PreparedStatement,
}

async fn prepare(session: &Session, ks: &str) -> anyhow::Result<Statements> {
    let p = async |text: String| session.prepare(text).await;
    Ok(Statements {
        message: p(format!("INSERT INTO {ks}.messages (conversation_id, bucket, message_id, body) VALUES (?, ?, ?, ?)")).await?,
        index: p(format!("INSERT INTO {ks}.message_index (conversation_id, message_id, total, by_client, by_worker) VALUES (?, ?, ?, ?, ?)")).await?,
        key: p(format!("INSERT INTO {ks}.message_keys (conversation_id, key, message_id) VALUES (?, ?, ?) USING TIMESTAMP ?")).await?,
        view: p(format!("INSERT INTO {ks}.views (conversation_id, applied_offset, body) VALUES (?, ?, ?) USING TIMESTAMP ?")).await?,
        position_get: p(format!("SELECT last_activity FROM {ks}.inbox_positions WHERE user_id = ? AND conversation_id = ?")).await?,
        inbox_delete: p(format!("DELETE FROM {ks}.inbox USING TIMESTAMP ? WHERE user_id = ? AND last_activity = ? AND conversation_id = ?")).await?,
        position_put: p(format!("INSERT INTO {ks}.inbox_positions (user_id, conversation_id, last_activity) VALUES (?, ?, ?) USING TIMESTAMP ?")).await?,
        inbox_put: p(format!("INSERT INTO {ks}.inbox (user_id, last_activity, conversation_id) VALUES (?, ?, ?) USING TIMESTAMP ?")).await?,
        watermark: p(format!("INSERT INTO {ks}.watermarks (partition, offset) VALUES (?, ?) USING TIMESTAMP ?")).await?,
    })
}

async fn move_inbox(
    session: &Session,
    s: &Statements,
    user: &str,
    conversation: i64,
    at: i64,
    stamp: i64,
) -> anyhow::Result<()> {
    let old =
        session.execute_unpaged(&s.position_get, (user, conversation)).await?.into_rows_result()?;
    if let Some((Some(previous),)) = old.maybe_first_row::<(Option<CqlTimestamp>,)>()? {
        session.execute_unpaged(&s.inbox_delete, (stamp, user, previous, conversation)).await?;
    }
    session.execute_unpaged(&s.position_put, (user, conversation, CqlTimestamp(at), stamp)).await?;
    session.execute_unpaged(&s.inbox_put, (user, CqlTimestamp(at), conversation, stamp)).await?;
    Ok(())
}

pub(crate) async fn run(args: &CqlRowsArgs) -> anyhow::Result<Value> {
    let keyspace = format!("bench_rows_{}", std::process::id());
    let config = CqlConfig::new(args.cql_nodes.clone(), keyspace.clone()).with_env_security()?;
    migrate(&config, &Replication::Simple { factor: 1 }).await?;
    // The projector's own session settings (credentials, TLS, consistency), so the baseline
    // pays what the projector pays.
    let session = viewstore::cql::open_session(&config).await?;
    let s = prepare(&session, &keyspace).await?;
    let (session, s) = (&session, &s);
    let message_body = "m".repeat(600);
    let view_body = "v".repeat(900);
    let conversations = args.conversations.max(1);
    let started = Instant::now();
    let mut offset: i64 = 0;
    for chunk in (0..args.messages).collect::<Vec<_>>().chunks(args.batch.max(1)) {
        stream::iter(chunk.iter().copied().map(Ok::<usize, anyhow::Error>))
            .try_for_each_concurrent(IN_FLIGHT, |n| {
                let conversation = 1 + (n % conversations) as i64;
                let id = 1024 * (n as i64 + 1);
                let total = (n / conversations) as i64 + 1;
                let body = message_body.as_str();
                async move {
                    let key = format!("k{n}");
                    futures_util::try_join!(
                        session.execute_unpaged(
                            &s.message,
                            (conversation, (total / 1000) as i32, id, body)
                        ),
                        session.execute_unpaged(&s.index, (conversation, id, total, total, 0_i64)),
                        session.execute_unpaged(
                            &s.key,
                            (conversation, key.as_str(), id, i64::MAX - id)
                        ),
                    )?;
                    Ok(())
                }
            })
            .await?;
        offset += chunk.len() as i64;
        let touched = chunk.len().min(conversations);
        stream::iter((0..touched).map(Ok::<usize, anyhow::Error>))
            .map_ok(|c| {
                let conversation = 1 + c as i64;
                let at = offset * 10 + c as i64;
                let body = view_body.as_str();
                async move {
                    let view =
                        session.execute_unpaged(&s.view, (conversation, offset, body, offset + 1));
                    let (client_id, worker_id) = (format!("client-{c}"), format!("worker-{c}"));
                    let client = move_inbox(session, s, &client_id, conversation, at, offset + 1);
                    let worker = move_inbox(session, s, &worker_id, conversation, at, offset + 1);
                    futures_util::try_join!(
                        async { view.await.map_err(anyhow::Error::from) },
                        client,
                        worker
                    )?;
                    Ok(())
                }
            })
            .try_buffer_unordered(IN_FLIGHT / 4)
            .try_collect::<Vec<()>>()
            .await?;
        session.execute_unpaged(&s.watermark, (0_i32, offset, offset + 1)).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop_keyspace(&config).await?;
    Ok(json!({
        "scenario": "cql-rows",
        "target": "plain-cql",
        "label": args.label,
        "messages": args.messages,
        "conversations": conversations,
        "batch": args.batch,
        "seconds": seconds,
        "messages_per_second": args.messages as f64 / seconds,
    }))
}
