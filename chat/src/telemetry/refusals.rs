//! `chat_limit_refusals`: what was refused by a limit, one counter family across the roles
//! although each library counts its own limits (the write path's in `ingest`, the sockets'
//! in `fanout`). Encoded at each scrape from the counters of the libraries a role runs.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

/// The counters of the libraries a role runs, by limit label.
#[derive(Debug)]
pub(crate) struct LimitRefusals {
    counters: Vec<(&'static str, Counter)>,
}

impl LimitRefusals {
    pub(crate) fn new(fanout: bool) -> Self {
        let mut counters = ingest::metrics::limit_refusals();
        if fanout {
            counters.extend(fanout::metrics::limit_refusals());
        }
        Self { counters }
    }
}

impl Collector for LimitRefusals {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "chat_limit_refusals",
            "Requests, handshakes and frames refused by a per-user or per-connection limit",
            None,
            MetricType::Counter,
        )?;
        for (limit, counter) in &self.counters {
            counter.encode(family.encode_family(&LimitLabels { limit })?)?;
        }
        Ok(())
    }
}
