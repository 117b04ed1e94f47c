//! projector: turns the log into the projections.
//!
//! [`fold`] is the whole meaning of the events, as a pure function from (view, event) to
//! (view, outcome): no I/O, tested given/when/then. [`batch`] applies the fold to a batch of
//! records, fetching from the store only what the fold asks for. [`runner`] is the consumer
//! loop: read a batch, apply it, write it idempotently, and only then commit the offsets.
//!
//! The projector is the only writer of the projections, and the projections hold nothing
//! the log does not: dropping them and replaying the log rebuilds them exactly.

pub mod batch;
pub mod fold;
pub mod metrics;
mod restore;
pub mod runner;
mod trace;

pub use runner::{ProjectorConfig, ProjectorError, run};
