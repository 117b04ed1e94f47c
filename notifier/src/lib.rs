//! notifier: tells people who are not looking. A consumer group on the log, stateless like
//! the other roles: for each message it decides, per recipient, whether they saw it in
//! time (connected, as the fanout's presence says, or read it within the delay), and if
//! not, sends one Web Push per burst to their browsers and a signed webhook to the jobs
//! system. Offsets are committed only below decisions still owed, so a notifier killed at
//! any moment notifies after it comes back, with the same ids.

mod ledger;
pub mod metrics;
mod outbound;
mod presence;
mod push;
mod retry;
mod runner;
mod webhook;

pub use ledger::{Burst, Ledger, Unseen};
pub use outbound::{Answer, Outbound};
pub use push::PushSettings;
pub use runner::{DEFAULT_DELAY, NotifierConfig, Progress, Stores, run};
pub use webhook::{
    Attempt, DeadLetters, Delivered, Parked, WebhookSecret, WebhookSender, WebhookSettings,
};
