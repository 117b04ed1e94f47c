//! The notifier's consumer loop: read the log in a consumer group, keep the [`Ledger`],
//! decide each burst when it is due (in its own task, so a slow receiver holds up nothing
//! else), and commit offsets only below what is still owed. Killed at any moment, the
//! notifier reads again from the last commit: bursts whose deadline passed meanwhile are
//! decided at once, with the ids they had.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eventlog::{EventLog, LogError, SignalBus, SubscribeSpec, Subscription, join_group};
use schemas::notify::{MessageUnreadData, PushPayload, WebhookData, WebhookEvent};
use schemas::{ConversationId, Position, Timestamp, UserId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use viewstore::{ConversationDirectory, PushSubscriptions, ReadModel};

use crate::ledger::{Burst, Ledger};
use crate::metrics;
use crate::outbound::Outbound;
use crate::presence::Presence;
use crate::push::{PushSender, PushSettings};
use crate::webhook::{DeadLetters, WebhookSender, WebhookSettings};

mod events;

/// The default `CHAT_NOTIFY_DELAY`: long enough that someone who just closed the tab, or
/// reads on the device in their hand, is not pinged; short enough to feel immediate.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// The consumer group; every notifier of one deployment shares it.
    pub group: String,
    /// This process's name on the signal bus (for presence queries).
    pub node: String,
    /// How long a recipient has to see a message before they are notified.
    pub delay: Duration,
    /// The fanout's presence TTL: a node not heard from for this long is gone.
    pub presence_ttl: Duration,
    pub push: Option<PushSettings>,
    pub webhook: Option<WebhookSettings>,
    /// Events older than this when read are not notified: a new group starts at the
    /// beginning of the log, and nobody wants to hear about last year's messages.
    pub horizon: Duration,
    /// Where webhook events the receiver did not take are parked.
    pub dead_letters: Option<DeadLetters>,
    /// What this notifier committed, for its lag.
    pub progress: Arc<Progress>,
    pub poll_wait: Duration,
}

impl NotifierConfig {
    pub fn new(node: String) -> Self {
        Self {
            group: "chat-notifier".into(),
            node,
            delay: DEFAULT_DELAY,
            presence_ttl: Duration::from_secs(30),
            push: None,
            webhook: None,
            horizon: DEFAULT_DELAY + Duration::from_secs(3600),
            dead_letters: None,
            progress: Arc::default(),
            poll_wait: Duration::from_millis(200),
        }
    }
}

/// What the notifier reads besides the log.
#[derive(Clone)]
pub struct Stores {
    pub read_model: Arc<dyn ReadModel>,
    pub directory: Arc<dyn ConversationDirectory>,
    pub subscriptions: Arc<dyn PushSubscriptions>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores")
    }
}

/// What a decision needs, shared by the tasks that make them.
#[derive(Debug)]
struct Deliveries {
    stores: Stores,
    presence: Arc<Presence>,
    push: Option<PushSender>,
    webhook: Option<WebhookSender>,
}

enum Finished {
    Burst(Burst),
    Task(Position),
}

/// How often offsets are committed and deadlines looked at.
const TICK: Duration = Duration::from_millis(200);

/// Runs until `shutdown`. Only a log that cannot be subscribed to at all ends it early.
pub async fn run(
    log: Arc<dyn EventLog>,
    signals: Arc<dyn SignalBus>,
    stores: Stores,
    config: NotifierConfig,
    shutdown: CancellationToken,
) -> Result<(), LogError> {
    let (presence, presence_task) = Presence::start(
        Arc::clone(&signals),
        config.presence_ttl,
        config.node.clone(),
        shutdown.clone(),
    )
    .await?;
    let client = Outbound::new();
    let deliveries = Arc::new(Deliveries {
        push: config.push.clone().map(|settings| {
            PushSender::new(settings, client.clone(), Arc::clone(&stores.subscriptions))
        }),
        webhook: config
            .webhook
            .clone()
            .map(|settings| WebhookSender::new(settings, client, config.dead_letters.clone())),
        stores,
        presence,
    });
    let mut subscription = log.subscribe(SubscribeSpec::Group(config.group.clone())).await?;
    tracing::info!(
        group = config.group,
        delay_ms = config.delay.as_millis() as u64,
        "notifier started"
    );
    let (finished_tx, mut finished) = mpsc::unbounded_channel::<(u64, Finished)>();
    let mut notifier = Notifier {
        ledger: Ledger::new(config.delay),
        horizon: config.horizon,
        participants: HashMap::new(),
        generation: 0,
        deliveries,
        finished: finished_tx,
        committed: Vec::new(),
        progress: Arc::clone(&config.progress),
    };
    let mut tick = tokio::time::interval(TICK);
    while !shutdown.is_cancelled() {
        // `Some(reason)` when the group's membership was lost (a rebalance, a session that
        // timed out): what was owed is the partitions' next owners' now.
        let lost = tokio::select! {
            () = shutdown.cancelled() => break,
            records = subscription.next_batch(1000, config.poll_wait) => match records {
                Ok(records) => {
                    notifier.take(&records).await;
                    None
                }
                Err(LogError::SubscriptionLost(reason)) => Some(reason),
                Err(error) => {
                    tracing::warn!(%error, "notifier failed to read the log; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    None
                }
            },
            Some((generation, done)) = finished.recv() => {
                notifier.finish(generation, done);
                None
            }
            _ = tick.tick() => {
                notifier.decide_due();
                match notifier.commit(subscription.as_mut()).await {
                    Err(LogError::SubscriptionLost(reason)) => Some(reason),
                    Err(error) => {
                        tracing::warn!(%error, "notifier could not commit; trying again");
                        None
                    }
                    Ok(()) => None,
                }
            }
        };
        if let Some(reason) = lost {
            tracing::warn!(reason, "notifier lost its group membership; joining again");
            notifier.forget();
            drop(subscription); // a log may allow one member per group and process
            match join_group(log.as_ref(), &config.group, &shutdown).await {
                Some(rejoined) => subscription = rejoined,
                None => return stopped(presence_task).await,
            }
        }
    }
    let _ = notifier.commit(subscription.as_mut()).await;
    stopped(presence_task).await
}

async fn stopped(presence: tokio::task::JoinHandle<()>) -> Result<(), LogError> {
    let _ = presence.await;
    tracing::info!("notifier stopped");
    Ok(())
}

struct Notifier {
    ledger: Ledger,
    horizon: Duration,
    /// Client and worker of conversations seen, so a message's recipient is known without
    /// a store read each time.
    participants: HashMap<ConversationId, [UserId; 2]>,
    /// Raised when the ledger is forgotten: what tasks of before report is ignored.
    generation: u64,
    deliveries: Arc<Deliveries>,
    finished: mpsc::UnboundedSender<(u64, Finished)>,
    committed: Vec<Position>,
    progress: Arc<Progress>,
}

/// Per partition, the offset after the last one this notifier committed.
#[derive(Debug, Default)]
pub struct Progress(parking_lot::Mutex<HashMap<u32, u64>>);

impl Progress {
    /// One entry per partition; `None` for those this member has not committed.
    pub fn next_offsets(&self, partitions: u32) -> Vec<Option<u64>> {
        let committed = self.0.lock();
        (0..partitions).map(|partition| committed.get(&partition).copied()).collect()
    }

    fn committed(&self, positions: &[Position]) {
        let mut committed = self.0.lock();
        for position in positions {
            committed.insert(position.partition, position.offset + 1);
        }
    }

    fn forget(&self) {
        self.0.lock().clear();
    }
}

impl Notifier {
    fn spawn_task(&mut self, position: Position, id: String, event: WebhookEvent) {
        self.ledger.hold_task(position);
        let (deliveries, finished, generation) =
            (Arc::clone(&self.deliveries), self.finished.clone(), self.generation);
        tokio::spawn(async move {
            if let Some(webhook) = &deliveries.webhook {
                webhook.deliver(&id, &event).await;
            }
            let _ = finished.send((generation, Finished::Task(position)));
        });
    }

    fn decide_due(&mut self) {
        for burst in self.ledger.due(Timestamp::now()) {
            let (deliveries, finished, generation) =
                (Arc::clone(&self.deliveries), self.finished.clone(), self.generation);
            tokio::spawn(async move {
                decide(&deliveries, &burst).await;
                let _ = finished.send((generation, Finished::Burst(burst)));
            });
        }
        metrics::waiting(self.ledger.waiting());
    }

    fn finish(&mut self, generation: u64, done: Finished) {
        if generation != self.generation {
            return;
        }
        match done {
            Finished::Burst(burst) => self.ledger.done(&burst),
            Finished::Task(position) => self.ledger.release(position),
        }
    }

    async fn commit(&mut self, subscription: &mut dyn Subscription) -> Result<(), LogError> {
        let positions = self.ledger.committable();
        if positions.is_empty() || positions == self.committed {
            return Ok(());
        }
        subscription.commit(&positions).await?;
        self.progress.committed(&positions);
        self.committed = positions;
        Ok(())
    }

    /// The group's partitions may now be another member's: start over from the commits.
    fn forget(&mut self) {
        self.ledger.clear();
        self.generation += 1;
        self.committed.clear();
        self.progress.forget();
    }
}

/// Whether `burst`'s recipient saw it in time, and if not, tells them.
async fn decide(deliveries: &Deliveries, burst: &Burst) {
    let Some(latest) = burst.latest() else { return };
    if deliveries.presence.is_online(&burst.recipient) {
        return metrics::decided("online");
    }
    let view = deliveries.stores.read_model.view(burst.conversation).await.ok().flatten();
    let role = view.as_ref().and_then(|view| view.role_of(&burst.recipient));
    if let (Some(view), Some(role)) = (&view, role)
        && view.read_state(role).last_read >= latest.id
    {
        return metrics::decided("read");
    }
    let count = u32::try_from(burst.messages.len()).unwrap_or(u32::MAX);
    let unread =
        view.as_ref().zip(role).map_or(0, |(view, role)| view.unread(role)).max(u64::from(count));
    metrics::decided("notified");
    let push = async {
        if let Some(push) = &deliveries.push {
            let payload = PushPayload {
                id: burst.id.clone(),
                kind: "message".into(),
                conversation_id: burst.conversation,
                message_id: latest.id,
                sender_name: latest.sender_name.clone(),
                text: latest.text.clone(),
                count,
                unread_count: unread,
            };
            push.notify(&burst.recipient, &payload).await;
        }
    };
    let webhook = async {
        if let Some(webhook) = &deliveries.webhook {
            let event = WebhookEvent {
                kind: "message.unread".into(),
                timestamp: latest.sent_at,
                data: WebhookData::MessageUnread(MessageUnreadData {
                    conversation_id: burst.conversation,
                    message_id: latest.id,
                    recipient_id: burst.recipient.clone(),
                    sender_id: latest.sender_id.clone(),
                    sender_name: latest.sender_name.clone(),
                    text: latest.text.clone(),
                    count,
                    unread_count: unread,
                }),
            };
            webhook.deliver(&burst.id, &event).await;
        }
    };
    tokio::join!(push, webhook);
}
