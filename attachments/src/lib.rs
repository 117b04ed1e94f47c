//! attachments: the files people send in a conversation.
//!
//! An upload is sniffed from its bytes ([`inspect`]; the client's name for it is only a
//! label), images are measured and get a thumbnail, and everything is kept in object
//! storage ([`Attachments`]) under the conversation's prefix. The log never carries the
//! bytes: a message's [`schemas::events::Attachment`] points at the stored object.

pub mod inspect;
mod store;

pub use inspect::{Inspected, Refusal};
pub use store::{Attachments, Download, Rendition, SaveError, StoreError};
