//! Why the cluster would not talk to this process. librdkafka retries a refused login or a
//! failed TLS handshake forever and only says why in its error and log events; a process
//! that waited on it would sit behind a "not ready" probe with nobody told. The first
//! metadata request of every client listens for those events, and a refusal ends it with
//! one line that names the setting at fault.

use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;

use crate::LogError;
use crate::kafka_config::{KafkaConfig, unavailable};

/// A client context that keeps what librdkafka said about its connections.
#[derive(Debug, Default)]
pub(crate) struct ListeningContext {
    /// The first refusal heard (later ones are the same refusal, retried).
    refusal: Mutex<Option<String>>,
    /// The last connection problem that was not a refusal (a broker down, a timeout).
    last_problem: Mutex<Option<String>>,
    /// Connections closed by a broker before it answered anything: one is a broker going
    /// down, several in a row is a listener that wants what this client does not speak.
    closed_unanswered: Mutex<u32>,
}

/// How many connections closed before any answer make a refusal.
const CLOSED_UNANSWERED_REFUSAL: u32 = 3;

impl ListeningContext {
    fn hear(&self, text: &str) {
        if refusal_kind(text).is_some() {
            self.refusal.lock().get_or_insert_with(|| text.to_owned());
            return;
        }
        if closed_before_answering(text) {
            let mut closed = self.closed_unanswered.lock();
            *closed += 1;
            if *closed >= CLOSED_UNANSWERED_REFUSAL {
                let refusal = format!("{} (connecting to a SSL listener?)", text.trim());
                self.refusal.lock().get_or_insert(refusal);
            }
        }
        *self.last_problem.lock() = Some(text.to_owned());
    }
}

/// A broker closed the connection while librdkafka waited for its first answer (the
/// ApiVersion request a TLS listener reads as garbage).
fn closed_before_answering(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("disconnected") && text.contains("in state apiversion_query")
}

impl ClientContext for ListeningContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // Every level: librdkafka tells some connection failures at notice level.
        self.hear(message);
        tracing::debug!(target: "librdkafka", facility, message, level = level as i32, "librdkafka");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.hear(reason);
        tracing::debug!(target: "librdkafka", %error, reason, "librdkafka error");
    }
}

impl ConsumerContext for ListeningContext {}

/// What a refusal was about, which decides the settings it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusalKind {
    /// The broker refused the SASL user or password.
    Credentials,
    /// The broker does not offer the SASL mechanism asked for.
    Mechanism,
    /// The broker's certificate does not chain to the trusted CAs (or does not name it).
    UntrustedCertificate,
    /// TLS was asked for, and the listener answered without it.
    ListenerWithoutTls,
    /// The listener wants TLS (or SASL), and the client spoke without it.
    ListenerWantsSecurity,
    /// The broker refused the client's own certificate (mutual TLS).
    ClientCertificate,
}

/// Reads librdkafka's words (2.x) for the refusals it would otherwise retry forever.
pub(crate) fn refusal_kind(text: &str) -> Option<RefusalKind> {
    let text = text.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|word| text.contains(word));
    if any(&["unsupported sasl mechanism", "broker's supported mechanisms"]) {
        return Some(RefusalKind::Mechanism);
    }
    if any(&["sasl authentication error", "authentication failed", "invalid credentials"]) {
        return Some(RefusalKind::Credentials);
    }
    if any(&["certificate verify failed", "broker certificate could not be verified"]) {
        return Some(RefusalKind::UntrustedCertificate);
    }
    if any(&[
        "wrong version number",
        "connecting to a plaintext broker listener",
        "packet length too long",
    ]) {
        return Some(RefusalKind::ListenerWithoutTls);
    }
    if any(&["connecting to a ssl listener", "sasl handshake", "connecting to a sasl"]) {
        return Some(RefusalKind::ListenerWantsSecurity);
    }
    if any(&["tlsv13 alert certificate required", "alert bad certificate", "alert unknown ca"]) {
        return Some(RefusalKind::ClientCertificate);
    }
    None
}

/// The one line a refusal becomes: what happened, the settings at fault, librdkafka's words.
pub(crate) fn refusal_message(config: &KafkaConfig, heard: &str) -> String {
    let security = &config.security;
    let login = security.sasl.as_ref().map_or_else(
        || "no SASL login".to_owned(),
        |login| format!("CHAT_KAFKA_SASL_USERNAME={}", login.username),
    );
    let what = match refusal_kind(heard) {
        Some(RefusalKind::Credentials) => format!(
            "Kafka refused the login ({login}, password from CHAT_KAFKA_SASL_PASSWORD_FILE): \
             check both"
        ),
        Some(RefusalKind::Mechanism) => format!(
            "Kafka does not offer CHAT_KAFKA_SASL_MECHANISM={}",
            security.sasl.as_ref().map_or("(none)", |login| login.mechanism.as_str())
        ),
        Some(RefusalKind::UntrustedCertificate) => format!(
            "the brokers' certificate is not trusted: CHAT_KAFKA_SSL_CA_FILE={} must hold the \
             CA that signed it, and the certificate must name the address in CHAT_KAFKA_BROKERS",
            security
                .ca_file
                .as_ref()
                .map_or("(unset: the system's CAs)".into(), |ca| ca.display().to_string())
        ),
        Some(RefusalKind::ListenerWithoutTls) => format!(
            "CHAT_KAFKA_SECURITY_PROTOCOL={} asks for TLS, but the listener at {} answered \
             without it",
            security.protocol.as_str(),
            config.brokers
        ),
        Some(RefusalKind::ListenerWantsSecurity) => format!(
            "the listener at {} closes connections that CHAT_KAFKA_SECURITY_PROTOCOL={} opens: \
             it wants {}",
            config.brokers,
            security.protocol.as_str(),
            if security.protocol.uses_tls() { "SASL" } else { "TLS (ssl or sasl_ssl)" },
        ),
        Some(RefusalKind::ClientCertificate) => "the brokers refused the client certificate \
            (CHAT_KAFKA_SSL_CERT_FILE, CHAT_KAFKA_SSL_KEY_FILE)"
            .to_owned(),
        None => "Kafka refused the connection".to_owned(),
    };
    format!("{what} ({})", heard.trim())
}

/// Fetches the cluster's metadata (of `topic` only, when given) with a client that listens
/// for refusals: a refusal fails at once with [`LogError::Refused`], anything else is asked
/// again until `config.request_timeout`. Blocking: call it from a blocking task.
pub(crate) fn fetch_metadata(
    config: &KafkaConfig,
    topic: Option<&str>,
    accept: impl Fn(&Metadata) -> bool,
) -> Result<Metadata, LogError> {
    let mut client_config = config.client();
    // librdkafka tells connection failures at info level; the process's log filter (which
    // rdkafka copies into the client) would otherwise keep them from the context.
    client_config.set_log_level(RDKafkaLogLevel::Info);
    let client: BaseConsumer<ListeningContext> =
        client_config.create_with_context(ListeningContext::default()).map_err(unavailable)?;
    let deadline = std::time::Instant::now() + config.request_timeout;
    // Short requests, so a refusal heard meanwhile ends the wait early.
    let attempt = config.request_timeout.min(Duration::from_secs(2));
    loop {
        let answer = client.fetch_metadata(topic, attempt);
        serve_events(&client, Duration::from_millis(50));
        if let Some(heard) = client.context().refusal.lock().clone() {
            return Err(LogError::Refused(refusal_message(config, &heard)));
        }
        match answer {
            Ok(metadata) if accept(&metadata) => return Ok(metadata),
            Ok(_) | Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(metadata) => return Ok(metadata),
            Err(error) => {
                let heard = client.context().last_problem.lock().clone();
                let detail = heard.map(|heard| format!(" (last heard: {})", heard.trim()));
                return Err(unavailable(format!(
                    "no metadata from {} within {:?}: {error}{}",
                    config.brokers,
                    config.request_timeout,
                    detail.unwrap_or_default()
                )));
            }
        }
    }
}

/// Hands the log and error events librdkafka queued to the context, for `window`: a poll
/// returns after one event when its time is up, so it is called until the window closes.
fn serve_events(client: &BaseConsumer<ListeningContext>, window: Duration) {
    let until = std::time::Instant::now() + window;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let _ = client.poll(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafkas_refusals_are_told_apart() {
        let cases = [
            (
                "sasl_ssl://127.0.0.1:9092/bootstrap: SASL authentication error: Authentication \
              failed during authentication due to invalid credentials with SASL mechanism \
              SCRAM-SHA-512 (after 5ms in state AUTH_REQ)",
                Some(RefusalKind::Credentials),
            ),
            (
                "sasl_ssl://127.0.0.1:9092/bootstrap: Unsupported SASL mechanism: broker's \
              supported mechanisms: SCRAM-SHA-512",
                Some(RefusalKind::Mechanism),
            ),
            (
                "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: error:0A000086:SSL \
              routines::certificate verify failed: broker certificate could not be verified, \
              verify that ssl.ca.location is correctly configured",
                Some(RefusalKind::UntrustedCertificate),
            ),
            (
                "ssl://127.0.0.1:19092/bootstrap: SSL handshake failed: error:0A00010B:SSL \
              routines::wrong version number (connecting to a PLAINTEXT broker listener?)",
                Some(RefusalKind::ListenerWithoutTls),
            ),
            (
                "127.0.0.1:9092/bootstrap: Disconnected while requesting ApiVersion: might be \
              caused by incorrect security.protocol configuration (connecting to a SSL \
              listener?) or broker version is < 0.10",
                Some(RefusalKind::ListenerWantsSecurity),
            ),
            (
                "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection \
              refused (after 0ms in state CONNECT)",
                None,
            ),
            ("1/1 brokers are down", None),
        ];
        for (text, kind) in cases {
            assert_eq!(refusal_kind(text), kind, "{text}");
        }
    }

    #[test]
    fn connections_closed_before_any_answer_are_a_refusal_only_when_repeated() {
        let context = ListeningContext::default();
        let closed = "127.0.0.1:9092/bootstrap: Disconnected: connection closed by peer: receive \
                      0 after POLLIN (after 2ms in state APIVERSION_QUERY)";
        context.hear(closed);
        context.hear(
            "127.0.0.1:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 failed: \
                      Connection refused (after 0ms in state CONNECT)",
        );
        context.hear(closed);
        assert!(context.refusal.lock().is_none(), "a broker going down is no refusal");
        context.hear(closed);
        let heard = context.refusal.lock().clone().unwrap_or_default();
        assert_eq!(refusal_kind(&heard), Some(RefusalKind::ListenerWantsSecurity), "{heard}");
    }

    #[test]
    fn a_refusal_names_the_settings_at_fault_and_nothing_secret()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let password = dir.path().join("password");
        std::fs::write(&password, "hunter2")?;
        let mut config = KafkaConfig::new("127.0.0.1:9092", "chat.events");
        config.security = crate::kafka_security::KafkaSecuritySettings {
            protocol: Some("sasl_ssl".into()),
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            sasl_username: Some("chat".into()),
            sasl_password_file: Some(password),
            ..Default::default()
        }
        .resolve()?;
        let message = refusal_message(&config, "SASL authentication error: Authentication failed");
        assert!(
            message.starts_with(
                "Kafka refused the login (CHAT_KAFKA_SASL_USERNAME=chat, \
            password from CHAT_KAFKA_SASL_PASSWORD_FILE)"
            ),
            "{message}"
        );
        assert!(!message.contains("hunter2"));
        assert!(!message.contains('\n'));
        let untrusted = refusal_message(&config, "certificate verify failed");
        assert!(untrusted.contains("CHAT_KAFKA_SSL_CA_FILE=(unset"), "{untrusted}");
        Ok(())
    }
}
