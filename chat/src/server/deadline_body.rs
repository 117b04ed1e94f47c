//! A request body that must keep arriving: within the read timeout, plus time in
//! proportion to what has arrived at [`MIN_BODY_RATE`].
//!
//! The body limit bounds how much a client may send, not how slowly: a body trickled a byte
//! every few seconds would hold its request (and the handler's task) for days. hyper times
//! only the head; this wrapper fails the body once the deadline passes, however it trickles.
//! Each chunk moves the deadline on by the time it would take at the minimum rate, so a
//! large upload over a slow phone connection finishes while a trickle still cannot hold a
//! request for long (a 10 MiB upload gets at most the read timeout plus 640 s).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The slowest a body may arrive once its first read timeout is used up, in bytes a second.
pub(crate) const MIN_BODY_RATE: u64 = 16 * 1024;

#[derive(Debug)]
pub(crate) struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    /// Set once the body has been read to its end.
    read_whole: Arc<AtomicBool>,
}

impl DeadlineBody {
    /// The body, and a flag that says afterwards whether the handler read all of it.
    pub(crate) fn new(inner: Incoming, within: Duration) -> (Self, Arc<AtomicBool>) {
        let read_whole = Arc::new(AtomicBool::new(false));
        let body = Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(within)),
            read_whole: Arc::clone(&read_whole),
        };
        (body, read_whole)
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(Ok(data)) =
                frame.as_ref().map(|result| result.as_ref().map(Frame::data_ref))
                && let Some(data) = data
            {
                let earned = Duration::from_secs_f64(data.len() as f64 / MIN_BODY_RATE as f64);
                let later = this.deadline.deadline() + earned;
                this.deadline.as_mut().reset(later);
            }
            if frame.is_none() {
                this.read_whole.store(true, Ordering::Relaxed);
            }
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(
                "the request body did not arrive within the read timeout".into(),
            )));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
