//! The process's metrics registry and `/metrics`. Every library counts its own metrics;
//! this registers those a role uses, adds the build info and the consumer lag (measured
//! when scraped, so it is exact at that moment), and serves them as Prometheus text or,
//! when the scraper asks for it, OpenMetrics with exemplars.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use eventlog::EventLog;
use fanout::Hub;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use viewstore::ReadModel;

use super::refusals::LimitRefusals;

/// How long a scrape waits for the log and the store to say where they are.
const LAG_DEADLINE: Duration = Duration::from_secs(2);

/// Where a consumer of the log is, to measure its lag from.
#[derive(Clone)]
pub(crate) enum Consumer {
    /// The projections: what the store's watermarks say the projector has written.
    Projector(Arc<dyn ReadModel>),
    /// A fanout node: where its hub's tail of the log is.
    Fanout(Arc<Hub>),
    /// A notifier: what it committed for the partitions it holds (others are other
    /// members').
    Notifier(Arc<notifier::Progress>),
}

impl Consumer {
    fn name(&self) -> &'static str {
        match self {
            Self::Projector(_) => "projector",
            Self::Fanout(_) => "fanout",
            Self::Notifier(_) => "notifier",
        }
    }

    /// Per partition, the offset of the next record this consumer has to take in (`None`
    /// for a partition it does not say).
    async fn next_offsets(&self, partitions: u32) -> Option<Vec<Option<u64>>> {
        match self {
            Self::Projector(read_model) => {
                let marks = read_model.watermarks(partitions).await.ok()?;
                Some(
                    marks
                        .into_iter()
                        .map(|mark| Some(mark.map_or(0, |offset| offset + 1)))
                        .collect(),
                )
            }
            Self::Fanout(hub) => Some(hub.positions().into_iter().map(Some).collect()),
            Self::Notifier(progress) => Some(progress.next_offsets(partitions)),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    consumer: &'static str,
    partition: u32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    role: &'static str,
}

/// What a role exposes.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    log: Arc<dyn EventLog>,
    consumers: Vec<Consumer>,
    lag: Family<LagLabels, Gauge>,
    /// When lag was last measured: scrapes in quick succession (several scrapers, a
    /// dashboard refreshing) cost the log and the store one query a second, not one each.
    measured: Arc<std::sync::Mutex<Option<Instant>>>,
}

/// Lag is measured at most this often, however often `/metrics` is scraped.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// The parts of the system a role runs, to register their metrics.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Parts {
    pub ingest: bool,
    pub fanout: bool,
    pub projector: bool,
    pub notifier: bool,
}

impl Metrics {
    pub(crate) fn new(
        role: &'static str,
        parts: Parts,
        log: Arc<dyn EventLog>,
        consumers: Vec<Consumer>,
    ) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "chat_build",
            "The running build: version and role",
            Info::new(BuildLabels { version: env!("CARGO_PKG_VERSION"), role }),
        );
        super::http::register(&mut registry);
        crate::server::metrics::register(&mut registry);
        super::traces::register(&mut registry);
        if parts.ingest || parts.fanout {
            auth::metrics::register(&mut registry);
            ingest::metrics::register(&mut registry);
            registry.register_collector(Box::new(LimitRefusals::new(parts.fanout)));
        }
        if parts.fanout {
            fanout::metrics::register(&mut registry);
        }
        if parts.projector {
            projector::metrics::register(&mut registry);
        }
        if parts.notifier {
            notifier::metrics::register(&mut registry);
        }
        let lag = Family::<LagLabels, Gauge>::default();
        if !consumers.is_empty() {
            registry.register(
                "chat_consumer_lag_records",
                "Records in the log not yet taken in by a consumer, per partition (measured \
                 when scraped)",
                lag.clone(),
            );
        }
        Self { registry: Arc::new(registry), log, consumers, lag, measured: Arc::default() }
    }

    /// `/metrics`.
    pub(crate) fn router(&self) -> Router {
        Router::new().route("/metrics", get(scrape)).with_state(self.clone())
    }

    async fn measure_lag(&self) {
        if self.consumers.is_empty() || !self.due() {
            return;
        }
        let Ok(Ok(ends)) = tokio::time::timeout(LAG_DEADLINE, self.log.end_offsets()).await else {
            tracing::debug!("the log's end offsets are not available; lag not updated");
            return;
        };
        for consumer in &self.consumers {
            let next =
                tokio::time::timeout(LAG_DEADLINE, consumer.next_offsets(self.log.partitions()));
            let Ok(Some(next)) = next.await else {
                tracing::debug!(
                    consumer = consumer.name(),
                    "position not available; lag not updated"
                );
                continue;
            };
            for (partition, (end, next)) in ends.iter().zip(next).enumerate() {
                let labels = LagLabels { consumer: consumer.name(), partition: partition as u32 };
                // A partition this consumer no longer holds (a rebalance moved it): its last
                // value would stand forever.
                let Some(next) = next else {
                    self.lag.remove(&labels);
                    continue;
                };
                let lag = i64::try_from(end.saturating_sub(next)).unwrap_or(i64::MAX);
                self.lag.get_or_create(&labels).set(lag);
            }
        }
    }
}

impl Metrics {
    /// Whether lag is due to be measured again, claiming the measurement if so.
    fn due(&self) -> bool {
        let Ok(mut measured) = self.measured.lock() else { return true };
        let now = Instant::now();
        if measured.is_some_and(|last| now.duration_since(last) < LAG_EVERY) {
            return false;
        }
        *measured = Some(now);
        true
    }
}

/// Scrapers that accept OpenMetrics get it (with exemplars); the rest get text 0.0.4.
async fn scrape(State(metrics): State<Metrics>, headers: HeaderMap) -> Response {
    metrics.measure_lag().await;
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let mut body = String::new();
    let (encoded, content_type) = if openmetrics {
        (
            prometheus_client::encoding::text::encode(&mut body, &metrics.registry),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            prometheus_client::encoding::prometheus_text::encode(&mut body, &metrics.registry),
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )
    };
    match encoded {
        Ok(()) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
