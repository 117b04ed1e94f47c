//! attachments: the files people send in a conversation.
//!
//! An upload is sniffed from its bytes ([`inspect`]; the client's name for it is only a
//! label), images are measured and get a thumbnail, and everything is kept in object
//! storage ([`Attachments`]) under the conversation's prefix. The log never carries the
//! bytes: a message's [`schemas::events::Attachment`] points at the stored object.

pub mod budget;
pub mod inspect;
mod names;
mod store;
pub mod strip;
mod workers;

pub use budget::Budget;
pub use inspect::Refusal;
pub use store::{Attachments, Download, Previews, Quotas, Rendition, SaveError, StoreError, Swept};
