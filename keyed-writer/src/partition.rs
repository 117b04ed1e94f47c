//! The writer of one partition's keyed sends: the only code that appends them while this
//! node holds the partition's lease.
//!
//! A send is checked against the [`KeyWindow`]; a key the window does not know is looked up
//! in the projections (the window covers everything they may not show yet), then appended.
//! Lookups run concurrently; a conversation's sends are appended in the order they arrived
//! (a slow lookup holds back only its own conversation, [`InOrder`]), in batches, many
//! batches in flight. An append that fails may still have been written, so after one
//! the writer appends nothing more until its outstanding appends have settled and it has read
//! back what landed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlog::{EventLog, LogError, NewRecord};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use schemas::{ChatEvent, Envelope, MessageId, Position};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use viewstore::{ReadModel, StoreError, StoredMessage};

use super::in_order::InOrder;
use super::window::{Admission, KeyWindow};
use super::{KeyedSend, Original, WriteError, Written};
use crate::metrics::{self, Appender};

/// Batches of appends outstanding at once. The producer keeps order within the partition
/// however many there are; the bound only keeps a stalled broker from collecting sends
/// without end (they wait in `ready`, where the lease still governs them).
const APPENDS_IN_FLIGHT: usize = 32;
/// Sends appended together at most.
const MAX_BATCH: usize = 512;
/// Records read per request when learning the partition's keys.
const READ_CHUNK: usize = 5_000;
/// A writer refuses keyed sends while more than this many records lie between the
/// projections' watermark and the end of the partition (it would have to read them all).
pub(crate) const SYNC_LIMIT: u64 = 2_000_000;
const RETRY_SYNC: Duration = Duration::from_millis(500);

pub(crate) type Reply = oneshot::Sender<Result<Written, WriteError>>;

/// A send waiting for its lookup or its append.
struct Pending {
    send: KeyedSend,
    reply: Reply,
}

type LookupDone = (u64, Pending, Result<Option<StoredMessage>, StoreError>);
type AppendDone = (Vec<Pending>, u64, Vec<Result<Position, LogError>>);

/// What a writer needs from its node.
pub(crate) struct WriterParts {
    pub partition: u32,
    pub log: Arc<dyn EventLog>,
    pub read_model: Arc<dyn ReadModel>,
    /// Until when this node may start appends (its lease); `None` once the lease is gone.
    pub lease: watch::Receiver<Option<Instant>>,
    /// The projections' watermark of every partition.
    pub watermarks: watch::Receiver<Vec<Option<u64>>>,
    /// Cancelled to hand the partition over: finish what was admitted, take nothing new.
    pub drain: CancellationToken,
    /// How long to wait before reading the partition (records a killed holder sent may
    /// still be landing).
    pub settle: Duration,
}

pub(crate) struct PartitionWriter {
    parts: WriterParts,
    window: KeyWindow<Reply>,
    /// The window knows every keyed record of the log below this offset.
    known_end: u64,
    lookups: FuturesUnordered<BoxFuture<'static, LookupDone>>,
    /// The order lookups finish in, per conversation.
    looked_up: InOrder<Pending>,
    appends: FuturesOrdered<BoxFuture<'static, AppendDone>>,
    ready: VecDeque<Pending>,
    /// Set after a failed append: the lowest offset its record could have landed at.
    reread_from: Option<u64>,
}

impl PartitionWriter {
    pub(crate) fn new(parts: WriterParts) -> Self {
        Self {
            parts,
            window: KeyWindow::default(),
            known_end: 0,
            lookups: FuturesUnordered::new(),
            looked_up: InOrder::default(),
            appends: FuturesOrdered::new(),
            ready: VecDeque::new(),
            reread_from: None,
        }
    }

    fn partition(&self) -> u32 {
        self.parts.partition
    }

    /// Learns the partition, then serves `requests` until drained or the lease is gone.
    pub(crate) async fn run(mut self, mut requests: mpsc::Receiver<(KeyedSend, Reply)>) {
        let drain = self.parts.drain.clone();
        let settle = self.parts.settle;
        let learned = tokio::select! {
            () = drain.cancelled() => false,
            learned = async {
                tokio::time::sleep(settle).await;
                self.learn_from_watermark().await
            } => learned,
        };
        if learned {
            self.serve(&mut requests).await;
        }
        requests.close();
        while let Ok((_, reply)) = requests.try_recv() {
            let _ = reply.send(Err(WriteError::NotHere));
        }
        tracing::info!(partition = self.partition(), "partition writer stopped");
    }

    /// Reads the partition from the projections' watermark to its end, retrying until it
    /// manages or the lease is gone. False when the writer should stop.
    async fn learn_from_watermark(&mut self) -> bool {
        loop {
            if self.parts.lease.borrow().is_none() {
                return false;
            }
            let partitions = self.parts.log.partitions();
            let learned = match self.parts.read_model.watermarks(partitions).await {
                Ok(marks) => {
                    let from = marks.get(self.partition() as usize).copied().flatten();
                    self.learn(from.map_or(0, |offset| offset + 1)).await
                }
                Err(error) => Err(error.to_string()),
            };
            match learned {
                Ok(()) => {
                    tracing::info!(
                        partition = self.partition(),
                        keys = self.window.written(),
                        end = self.known_end,
                        "partition writer ready"
                    );
                    return true;
                }
                Err(reason) => {
                    tracing::warn!(
                        partition = self.partition(),
                        reason,
                        "cannot learn the partition's keys yet; retrying"
                    );
                    tokio::time::sleep(RETRY_SYNC).await;
                }
            }
        }
    }

    /// Adds every keyed message from `from` to the partition's current end to the window.
    async fn learn(&mut self, from: u64) -> Result<(), String> {
        let log = Arc::clone(&self.parts.log);
        let partition = self.partition();
        let end = log.end_offset(partition).await.map_err(|error| error.to_string())?;
        if end.saturating_sub(from) > SYNC_LIMIT {
            return Err(format!(
                "the projections are {} records behind the log (at most {SYNC_LIMIT})",
                end - from
            ));
        }
        let mut next = from;
        while next < end {
            let records =
                log.read(partition, next, READ_CHUNK).await.map_err(|error| error.to_string())?;
            let Some(last) = records.last() else {
                break;
            };
            next = last.position.offset + 1;
            for record in &records {
                if let Ok((_, Some(ChatEvent::MessageSent(sent)))) = Envelope::decode(&record.value)
                    && let Some(key) = &sent.idempotency_key
                {
                    let id = MessageId::from_position(record.position);
                    let original = Original { id, sent_at: sent.sent_at };
                    self.window.learn(sent.conversation_id, key, original, record.position.offset);
                }
            }
        }
        self.known_end = self.known_end.max(end);
        Ok(())
    }

    async fn serve(&mut self, requests: &mut mpsc::Receiver<(KeyedSend, Reply)>) {
        let drain = self.parts.drain.clone();
        let mut watermarks = self.parts.watermarks.clone();
        let mut lease = self.parts.lease.clone();
        let mut draining = false;
        let mut intake_open = true;
        loop {
            if !self.start_appends() {
                break;
            }
            if self.reread_from.is_some() && self.appends.is_empty() && !self.reread().await {
                break;
            }
            if draining
                && self.lookups.is_empty()
                && self.appends.is_empty()
                && self.ready.is_empty()
            {
                break;
            }
            tokio::select! {
                () = drain.cancelled(), if !draining => {
                    // What is already queued is still served; nothing new gets in.
                    draining = true;
                    requests.close();
                }
                // While failed appends are read back, new sends wait: none may be admitted
                // with a key that the read is about to find.
                request = requests.recv(), if intake_open && self.reread_from.is_none() => match request {
                    Some((send, reply)) => self.admit(send, reply),
                    None => {
                        intake_open = false;
                        draining = true;
                    }
                },
                Some(done) = self.lookups.next(), if !self.lookups.is_empty() => {
                    self.looked_up(done);
                }
                Some(done) = self.appends.next(), if !self.appends.is_empty() => {
                    self.appended(done);
                }
                Ok(()) = watermarks.changed() => {
                    let mark = watermarks.borrow_and_update().get(self.partition() as usize)
                        .copied().flatten();
                    if let Some(mark) = mark {
                        self.window.forget_through(mark);
                    }
                }
                changed = lease.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        self.fail_everything("the partition's writer stopped");
    }

    fn admit(&mut self, send: KeyedSend, reply: Reply) {
        match self.window.admit(send.conversation, &send.key, reply) {
            Admission::Written(original, reply) => {
                let _ = reply.send(Ok(Written::Earlier(original)));
            }
            Admission::Queued => {}
            Admission::New(reply) => {
                let read_model = Arc::clone(&self.parts.read_model);
                let arrival = self.looked_up.arrive(send.conversation);
                let pending = Pending { send, reply };
                self.lookups.push(Box::pin(async move {
                    let found = read_model
                        .message_with_key(pending.send.conversation, &pending.send.key)
                        .await;
                    (arrival, pending, found)
                }));
            }
        }
    }

    fn looked_up(&mut self, (arrival, pending, found): LookupDone) {
        let conversation = pending.send.conversation;
        let to_append = match found {
            Ok(None) => Some(pending),
            Ok(Some(earlier)) => {
                let earlier = Original::from(&earlier);
                let send = &pending.send;
                // The projections answer for this key; the window need not remember it.
                let waiting = self.window.settle(send.conversation, &send.key, None);
                for reply in waiting.into_iter().chain([pending.reply]) {
                    let _ = reply.send(Ok(Written::Earlier(earlier)));
                }
                None
            }
            Err(error) => {
                let reason = format!("looking up an idempotency key: {error}");
                self.fail(pending, &reason);
                None
            }
        };
        let released = self.looked_up.finish(conversation, arrival, to_append);
        self.ready.extend(released);
    }

    /// Starts appending what is ready, while the lease allows. False when the lease is gone.
    fn start_appends(&mut self) -> bool {
        let until = *self.parts.lease.borrow();
        let Some(until) = until else {
            return false;
        };
        if self.reread_from.is_some() {
            return true;
        }
        while !self.ready.is_empty() && self.appends.len() < APPENDS_IN_FLIGHT {
            if Instant::now() >= until {
                // Not renewed in time: others may soon take the partition over, so nothing
                // more may be written; the sends fail and their clients retry.
                let ready: Vec<Pending> = self.ready.drain(..).collect();
                for pending in ready {
                    self.fail(pending, "this node's lease on the partition lapsed");
                }
                return true;
            }
            let count = self.ready.len().min(MAX_BATCH);
            let batch: Vec<Pending> = self.ready.drain(..count).collect();
            let records: Vec<NewRecord> =
                batch.iter().map(|pending| pending.send.record.clone()).collect();
            let log = Arc::clone(&self.parts.log);
            let landed_from = self.known_end;
            self.appends.push_back(Box::pin(async move {
                let (count, started) = (records.len(), Instant::now());
                let results = log.append_batch(records).await;
                let ok = results.iter().all(Result::is_ok);
                metrics::appended(Appender::Keyed, count, ok, started.elapsed());
                (batch, landed_from, results)
            }));
        }
        true
    }

    fn appended(&mut self, (batch, landed_from, results): AppendDone) {
        for (pending, result) in batch.into_iter().zip(results) {
            let send = &pending.send;
            match result {
                Ok(position) => {
                    let id = MessageId::from_position(position);
                    self.known_end = self.known_end.max(position.offset + 1);
                    let original = Original { id, sent_at: send.sent_at };
                    let waiting = self.window.settle(
                        send.conversation,
                        &send.key,
                        Some((original, position.offset)),
                    );
                    let _ = pending.reply.send(Ok(Written::Appended(id)));
                    for reply in waiting {
                        let _ = reply.send(Ok(Written::Earlier(original)));
                    }
                }
                Err(error) => {
                    tracing::warn!(partition = self.partition(), %error,
                        "a keyed append failed; reading back what landed before appending more");
                    self.reread_from =
                        Some(self.reread_from.map_or(landed_from, |from| from.min(landed_from)));
                    self.fail(pending, &format!("append failed: {error}"));
                }
            }
        }
    }

    /// After failed appends have all settled: learn whichever of them landed after all.
    async fn reread(&mut self) -> bool {
        let Some(from) = self.reread_from else {
            return true;
        };
        loop {
            // Handing over is safe without the read: the failed appends have settled (the
            // log gave up on them), and the next writer reads the partition anyway.
            if self.parts.lease.borrow().is_none() || self.parts.drain.is_cancelled() {
                return false;
            }
            match self.learn(from).await {
                Ok(()) => {
                    self.reread_from = None;
                    return true;
                }
                Err(reason) => {
                    tracing::warn!(
                        partition = self.partition(),
                        reason,
                        "cannot read back failed appends yet; retrying"
                    );
                    tokio::time::sleep(RETRY_SYNC).await;
                }
            }
        }
    }

    fn fail(&mut self, pending: Pending, reason: &str) {
        let send = &pending.send;
        let waiting = self.window.settle(send.conversation, &send.key, None);
        for reply in waiting.into_iter().chain([pending.reply]) {
            let _ = reply.send(Err(WriteError::Unavailable(reason.to_owned())));
        }
    }

    fn fail_everything(&mut self, reason: &str) {
        let held: Vec<Pending> = self.looked_up.drain();
        let ready: Vec<Pending> = self.ready.drain(..).chain(held).collect();
        for pending in ready {
            self.fail(pending, reason);
        }
        // Lookups and appends still in flight are dropped with their reply channels, which
        // the waiting callers see as the writer having gone.
        self.lookups = FuturesUnordered::new();
        self.appends = FuturesOrdered::new();
    }
}
