//! One per node: takes, renews and hands back writer leases, runs a [`PartitionWriter`] for
//! each partition it holds, and keeps the routing table every send consults.
//!
//! Every change to a lease is a compare-and-set on the version last read, so the store
//! decides every race. A partition this node is assigned gets taken when its lease is
//! absent or free, or once it has lapsed (unchanged for a whole lease period, see
//! [`WriterTiming`]); a partition it is no longer assigned is drained (what was admitted
//! gets appended) and then released, so the next holder takes it at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlog::{EventLog, WriterAssignment};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use viewstore::{ReadModel, WriterLease, WriterLeases};

use super::forward::Prober;
use super::partition::{PartitionWriter, Reply, WriterParts};
use super::timing::WriterTiming;
use super::{KeyedSend, Route, Routes, WriterConfig};

/// How often the keeper looks at the leases when nothing is changing hands.
const TICK: Duration = Duration::from_secs(1);
/// How often while a partition it wants is held by another node or being handed back, or
/// when a send found no writer.
const BUSY_TICK: Duration = Duration::from_millis(200);
/// How often it reads the projections' watermarks for its writers.
const WATERMARKS_EVERY: Duration = Duration::from_secs(1);
/// How often holders of wanted leases are checked for being gone.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Sends queued for one partition's writer before senders wait.
const WRITER_QUEUE: usize = 4096;

/// A lease this node holds, with the writer that uses it.
struct Held {
    lease: WriterLease,
    renewal_sent: Instant,
    until: watch::Sender<Option<Instant>>,
    requests: mpsc::Sender<(KeyedSend, Reply)>,
    drain: CancellationToken,
    task: JoinHandle<()>,
}

/// A lease as last read, and since when it has looked exactly like this.
struct Seen {
    lease: WriterLease,
    since: Instant,
}

pub(crate) struct Keeper {
    log: Arc<dyn EventLog>,
    read_model: Arc<dyn ReadModel>,
    leases: Arc<dyn WriterLeases>,
    config: WriterConfig,
    assignment: Option<Box<dyn WriterAssignment>>,
    routes: Routes,
    /// Woken by a send that found no writer, so the routes are read again at once.
    lost_route: Arc<Notify>,
    held: HashMap<u32, Held>,
    seen: HashMap<u32, Seen>,
    watermarks: watch::Sender<Vec<Option<u64>>>,
    watermarks_read: Option<Instant>,
    prober: Prober,
    /// Holders found gone, by node: their leases are taken without waiting for them to lapse.
    gone: HashMap<String, bool>,
    probed: Option<Instant>,
}

impl Keeper {
    pub(crate) fn new(
        log: Arc<dyn EventLog>,
        read_model: Arc<dyn ReadModel>,
        leases: Arc<dyn WriterLeases>,
        config: WriterConfig,
        assignment: Option<Box<dyn WriterAssignment>>,
        routes: Routes,
        lost_route: Arc<Notify>,
    ) -> Self {
        let partitions = log.partitions() as usize;
        Self {
            log,
            read_model,
            leases,
            config,
            assignment,
            routes,
            lost_route,
            held: HashMap::new(),
            seen: HashMap::new(),
            watermarks: watch::Sender::new(vec![None; partitions]),
            watermarks_read: None,
            prober: Prober::new(),
            gone: HashMap::new(),
            probed: None,
        }
    }

    fn timing(&self) -> WriterTiming {
        self.config.timing
    }

    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        // After shutdown, leases are handed back; one that cannot be released (the store is
        // down) lapses by itself, so the keeper stops waiting after a lease period.
        let mut give_up: Option<Instant> = None;
        loop {
            let stopping = shutdown.is_cancelled();
            if stopping && give_up.is_none() {
                give_up = Some(Instant::now() + self.timing().lease);
            }
            let wanted = match (&self.assignment, stopping) {
                (Some(assignment), false) => assignment.current(),
                _ => Vec::new(),
            };
            self.step(&wanted).await;
            if stopping && (self.held.is_empty() || give_up.is_some_and(|at| Instant::now() >= at))
            {
                break;
            }
            let tick = if self.settling(&wanted) {
                BUSY_TICK
            } else if self.held.is_empty() {
                TICK
            } else {
                TICK.min(self.timing().renew_every / 2)
            };
            let lost_route = Arc::clone(&self.lost_route);
            let assignment = self.assignment.as_mut();
            let lost = tokio::select! {
                () = tokio::time::sleep(tick) => None,
                () = lost_route.notified() => None,
                () = shutdown.cancelled(), if !stopping => None,
                changed = async {
                    match assignment {
                        Some(assignment) => assignment.changed().await.map(drop),
                        None => std::future::pending().await,
                    }
                }, if !stopping => changed.err(),
            };
            if let Some(error) = lost {
                tracing::warn!(%error, "lost the writer group; handing leases back");
                self.assignment = None;
            }
        }
        for held in self.held.values() {
            let _ = held.until.send(None);
            held.drain.cancel();
        }
        self.routes.write().iter_mut().for_each(|route| *route = Route::Nobody);
    }

    /// Whether a partition is changing hands: one this node wants is not yet its own, or one
    /// it holds is being handed back.
    fn settling(&self, wanted: &[u32]) -> bool {
        wanted.iter().any(|partition| !self.held.contains_key(partition))
            || self.held.values().any(|held| held.drain.is_cancelled())
    }

    async fn step(&mut self, wanted: &[u32]) {
        self.observe().await;
        self.refresh_watermarks().await;
        self.renew().await;
        self.hand_back(wanted).await;
        self.probe_holders(wanted).await;
        self.take(wanted).await;
        self.publish_routes();
    }

    async fn observe(&mut self) {
        let leases = match self.leases.writer_leases().await {
            Ok(leases) => leases,
            Err(error) => {
                tracing::warn!(%error, "cannot read the writer leases");
                return;
            }
        };
        let now = Instant::now();
        for lease in leases {
            let unchanged = self.seen.get(&lease.partition).is_some_and(|seen| seen.lease == lease);
            if !unchanged {
                self.seen.insert(lease.partition, Seen { lease, since: now });
            }
        }
    }

    async fn refresh_watermarks(&mut self) {
        if self.held.is_empty()
            || self.watermarks_read.is_some_and(|at| at.elapsed() < WATERMARKS_EVERY)
        {
            return;
        }
        self.watermarks_read = Some(Instant::now());
        match self.read_model.watermarks(self.log.partitions()).await {
            Ok(marks) => {
                self.watermarks.send_if_modified(|current| {
                    let changed = *current != marks;
                    *current = marks;
                    changed
                });
            }
            Err(error) => tracing::warn!(%error, "cannot read the projections' watermarks"),
        }
    }

    async fn renew(&mut self) {
        let due: Vec<(u32, WriterLease)> = self
            .held
            .iter()
            .filter(|(_, held)| held.renewal_sent.elapsed() >= self.config.timing.renew_every)
            .map(|(partition, held)| (*partition, held.lease.clone()))
            .collect();
        let renewals = due.into_iter().map(|(partition, lease)| {
            let store = Arc::clone(&self.leases);
            async move {
                let sent = Instant::now();
                (partition, sent, store.renew_writer_lease(&lease).await)
            }
        });
        for (partition, sent, renewed) in futures_util::future::join_all(renewals).await {
            match renewed {
                Ok(Some(lease)) => {
                    if let Some(held) = self.held.get_mut(&partition) {
                        held.lease = lease;
                        held.renewal_sent = sent;
                        let _ = held.until.send(Some(self.config.timing.appends_until(sent)));
                    }
                }
                Ok(None) => {
                    tracing::warn!(partition, "writer lease taken by another node; stopping");
                    if let Some(held) = self.held.remove(&partition) {
                        let _ = held.until.send(None);
                        held.drain.cancel();
                    }
                }
                Err(error) => tracing::warn!(partition, %error, "cannot renew a writer lease"),
            }
        }
    }

    /// Drains the writers of partitions this node should no longer write, and releases each
    /// lease once its writer has finished. A partition assigned again while its writer drains
    /// is still released, and taken afresh on the next step.
    async fn hand_back(&mut self, wanted: &[u32]) {
        let leaving: Vec<u32> = self
            .held
            .iter()
            .filter(|(partition, held)| !wanted.contains(partition) || held.drain.is_cancelled())
            .map(|(partition, _)| *partition)
            .collect();
        for partition in leaving {
            let Some(held) = self.held.get(&partition) else {
                continue;
            };
            held.drain.cancel();
            if !held.task.is_finished() {
                continue;
            }
            match self.leases.release_writer_lease(&held.lease).await {
                Ok(()) => {
                    tracing::info!(partition, "handed the partition's writer lease back");
                    if let Some(held) = self.held.remove(&partition) {
                        let _ = held.until.send(None);
                        let free = WriterLease {
                            partition,
                            node: String::new(),
                            address: String::new(),
                            version: held.lease.version + 1,
                        };
                        self.seen.insert(partition, Seen { lease: free, since: Instant::now() });
                    }
                }
                Err(error) => tracing::warn!(partition, %error, "cannot release a writer lease"),
            }
        }
    }

    /// Asks, at most once a second, whether the holders of leases this node wants are still
    /// running: a holder killed outright need not be waited out for a lease period.
    async fn probe_holders(&mut self, wanted: &[u32]) {
        if self.probed.is_some_and(|at| at.elapsed() < PROBE_EVERY) {
            return;
        }
        let mut holders: Vec<(String, String)> = wanted
            .iter()
            .filter(|partition| !self.held.contains_key(partition))
            .filter_map(|partition| self.seen.get(partition))
            .filter(|seen| !seen.lease.is_free() && seen.lease.node != self.config.node)
            .map(|seen| (seen.lease.node.clone(), seen.lease.address.clone()))
            .collect();
        holders.sort_unstable();
        holders.dedup();
        if holders.is_empty() {
            return;
        }
        self.probed = Some(Instant::now());
        let prober = &self.prober;
        let probes = holders.into_iter().map(|(node, address)| async move {
            let gone = prober.is_gone(&address, &node).await;
            (node, gone)
        });
        self.gone = futures_util::future::join_all(probes).await.into_iter().collect();
    }

    /// Takes the leases of wanted partitions that are absent, free, lapsed, or held by a
    /// process that is gone.
    async fn take(&mut self, wanted: &[u32]) {
        let exclusive = self.assignment.as_ref().is_some_and(|a| a.exclusive());
        let now = Instant::now();
        let timing = self.timing();
        // What a process that was killed had already sent may still be landing for a moment;
        // a holder that handed its lease back, or let it lapse, has nothing in flight.
        let killed_settle = timing.margin;
        let attempts: Vec<(u32, Option<WriterLease>, Duration)> = wanted
            .iter()
            .filter(|partition| !self.held.contains_key(partition))
            .filter_map(|partition| match self.seen.get(partition) {
                None => Some((*partition, None, Duration::ZERO)),
                Some(seen) => {
                    let lease = &seen.lease;
                    let settle = if lease.is_free()
                        || lease.node == self.config.node
                        || exclusive
                        || timing.has_lapsed(seen.since, now)
                    {
                        Some(Duration::ZERO)
                    } else if self.gone.get(&lease.node).copied().unwrap_or(false) {
                        Some(killed_settle)
                    } else {
                        None
                    };
                    settle.map(|settle| (*partition, Some(lease.clone()), settle))
                }
            })
            .collect();
        let takes = attempts.into_iter().map(|(partition, seen, settle)| {
            let store = Arc::clone(&self.leases);
            let (node, address) = (self.config.node.clone(), self.config.address.clone());
            async move {
                let sent = Instant::now();
                let taken =
                    store.take_writer_lease(partition, &node, &address, seen.as_ref()).await;
                (partition, sent, seen, settle, taken)
            }
        });
        for (partition, sent, seen, settle, taken) in futures_util::future::join_all(takes).await {
            match taken {
                Ok(Some(lease)) => {
                    let previous = seen.filter(|lease| !lease.is_free()).map(|lease| lease.node);
                    tracing::info!(partition, ?previous, "took the partition's writer lease");
                    self.start_writer(lease, sent, settle);
                }
                Ok(None) => {
                    // Someone else changed it first; the next read shows who.
                    self.seen.remove(&partition);
                }
                Err(error) => tracing::warn!(partition, %error, "cannot take a writer lease"),
            }
        }
    }

    fn start_writer(&mut self, lease: WriterLease, sent: Instant, settle: Duration) {
        let partition = lease.partition;
        let (until, lease_watch) = watch::channel(Some(self.timing().appends_until(sent)));
        let (requests, queue) = mpsc::channel(WRITER_QUEUE);
        let drain = CancellationToken::new();
        let writer = PartitionWriter::new(WriterParts {
            partition,
            log: Arc::clone(&self.log),
            read_model: Arc::clone(&self.read_model),
            lease: lease_watch,
            watermarks: self.watermarks.subscribe(),
            drain: drain.clone(),
            settle,
        });
        let task = tokio::spawn(writer.run(queue));
        self.watermarks_read = None;
        self.held
            .insert(partition, Held { lease, renewal_sent: sent, until, requests, drain, task });
    }

    fn publish_routes(&self) {
        let partitions = self.log.partitions();
        let routes: Vec<Route> = (0..partitions)
            .map(|partition| {
                if let Some(held) = self.held.get(&partition) {
                    return if held.drain.is_cancelled() {
                        Route::Nobody
                    } else {
                        Route::Local(held.requests.clone())
                    };
                }
                match self.seen.get(&partition) {
                    Some(seen) if !seen.lease.is_free() && seen.lease.node != self.config.node => {
                        Route::Remote { address: seen.lease.address.clone() }
                    }
                    _ => Route::Nobody,
                }
            })
            .collect();
        *self.routes.write() = routes;
    }
}
