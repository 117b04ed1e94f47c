//! What every handler and extractor of the HTTP API shares, apart from the routes so that
//! the extractors need not depend on them.

use std::sync::Arc;

use crate::service::Ingest;

#[derive(Clone, Debug)]
pub struct IngestState {
    pub ingest: Arc<Ingest>,
    pub verifier: Arc<auth::Verifier>,
    /// What uploads and downloads may take from this node.
    pub files: Arc<crate::files::FileGate>,
    /// Web Push registration; `None` without a VAPID key.
    pub push: Option<Arc<crate::push::PushRegistry>>,
}
