//! What every handler and extractor of the HTTP API shares, apart from the routes so that
//! the extractors need not depend on them.

use std::sync::Arc;

use crate::service::Ingest;

#[derive(Clone, Debug)]
pub struct IngestState {
    pub ingest: Arc<Ingest>,
    pub verifier: Arc<auth::Verifier>,
    /// Largest attachment taken (413 beyond).
    pub max_upload_bytes: usize,
}
