//! What every handler and extractor of the HTTP API shares, apart from the routes so that
//! the extractors need not depend on them.

use std::sync::Arc;

use viewstore::PushSubscriptions;
use webpush::AllowedEndpoints;

use crate::service::Ingest;

#[derive(Clone, Debug)]
pub struct IngestState {
    pub ingest: Arc<Ingest>,
    pub verifier: Arc<auth::Verifier>,
    /// What uploads and downloads may take from this node.
    pub files: Arc<crate::files::FileGate>,
    /// Web Push registration; `None` without a VAPID key.
    pub push: Option<Arc<PushRegistry>>,
}

/// What the push routes need; absent when the server has no VAPID key.
#[derive(Clone)]
pub struct PushRegistry {
    /// Base64url of the VAPID public key, for `applicationServerKey`.
    pub public_key: String,
    pub allowed: AllowedEndpoints,
    pub store: Arc<dyn PushSubscriptions>,
}

impl std::fmt::Debug for PushRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRegistry").field("public_key", &self.public_key).finish_non_exhaustive()
    }
}
