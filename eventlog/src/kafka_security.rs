//! How every Kafka client of this process proves who it is and encrypts its connections,
//! and the librdkafka properties an operator may add. Properties the delivery guarantees
//! rest on (acknowledgements, idempotence, the timeouts the writer timing is derived from,
//! isolation, offset commits) are refused by name, and secrets only come from files.
//!
//! Settings are named by their `CHAT_KAFKA_*` variables in every message: that is how
//! operators set them (a ConfigMap and a Secret mount), and the flags share their names.

use std::path::PathBuf;
use std::str::FromStr;

use rdkafka::config::ClientConfig;
use settings::Secret;

use crate::LogError;

/// `security.protocol`: whether connections are encrypted and whether SASL authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "plaintext" => Ok(Self::Plaintext),
            "ssl" => Ok(Self::Ssl),
            "sasl_plaintext" => Ok(Self::SaslPlaintext),
            "sasl_ssl" => Ok(Self::SaslSsl),
            _ => Err(format!("{text:?} is not plaintext, ssl, sasl_plaintext or sasl_ssl")),
        }
    }
}

/// `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl FromStr for SaslMechanism {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(Self::Plain),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            _ => Err(format!("{text:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")),
        }
    }
}

/// A SASL user and its password (read from `CHAT_KAFKA_SASL_PASSWORD_FILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

/// A client certificate and its key (PEM files), for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Everything about how this process's Kafka clients authenticate and encrypt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    pub protocol: SecurityProtocol,
    /// Required exactly when the protocol is `sasl_*`.
    pub sasl: Option<SaslLogin>,
    /// CA certificates (PEM) brokers' certificates must chain to; without it, the system's.
    pub ca_file: Option<PathBuf>,
    pub client_certificate: Option<ClientCertificate>,
    /// Further librdkafka properties, applied after the project's own (so they may tune
    /// batching, fetching or sockets), checked by [`check_property`].
    pub options: Vec<(String, String)>,
}

/// The raw settings, as the command line or the environment give them.
#[derive(Debug, Clone, Default)]
pub struct KafkaSecuritySettings {
    pub protocol: Option<String>,
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password_file: Option<PathBuf>,
    pub ssl_ca_file: Option<PathBuf>,
    pub ssl_cert_file: Option<PathBuf>,
    pub ssl_key_file: Option<PathBuf>,
    pub options: Vec<String>,
}

/// The variables [`KafkaSecuritySettings::from_env`] reads, which the binary's flags also
/// take: one list, so a test holds the two to each other.
pub const SECURITY_VARIABLES: [&str; 8] = [
    "CHAT_KAFKA_SECURITY_PROTOCOL",
    "CHAT_KAFKA_SASL_MECHANISM",
    "CHAT_KAFKA_SASL_USERNAME",
    "CHAT_KAFKA_SASL_PASSWORD_FILE",
    "CHAT_KAFKA_SSL_CA_FILE",
    "CHAT_KAFKA_SSL_CERT_FILE",
    "CHAT_KAFKA_SSL_KEY_FILE",
    "CHAT_KAFKA_OPTIONS",
];

impl KafkaSecuritySettings {
    /// The settings in the process environment: for tools and tests that reach the cluster
    /// without the binary's command line (`CHAT_KAFKA_OPTIONS` separates properties by `;`).
    pub fn from_env() -> Self {
        let text = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let path = |name: &str| text(name).map(PathBuf::from);
        Self {
            protocol: text("CHAT_KAFKA_SECURITY_PROTOCOL"),
            sasl_mechanism: text("CHAT_KAFKA_SASL_MECHANISM"),
            sasl_username: text("CHAT_KAFKA_SASL_USERNAME"),
            sasl_password_file: path("CHAT_KAFKA_SASL_PASSWORD_FILE"),
            ssl_ca_file: path("CHAT_KAFKA_SSL_CA_FILE"),
            ssl_cert_file: path("CHAT_KAFKA_SSL_CERT_FILE"),
            ssl_key_file: path("CHAT_KAFKA_SSL_KEY_FILE"),
            options: text("CHAT_KAFKA_OPTIONS")
                .map(|all| {
                    all.split(';').filter(|one| !one.trim().is_empty()).map(str::to_owned).collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Checks the settings together and reads the password file: a mistake is refused here,
    /// naming the setting, before anything connects.
    pub fn resolve(&self) -> Result<KafkaSecurity, LogError> {
        let config = |message: String| LogError::Config(message);
        let protocol = match &self.protocol {
            Some(text) => text
                .parse::<SecurityProtocol>()
                .map_err(|error| config(format!("CHAT_KAFKA_SECURITY_PROTOCOL: {error}")))?,
            None => SecurityProtocol::Plaintext,
        };
        let sasl = self.sasl_login(protocol)?;
        if !protocol.uses_tls() {
            let tls_setting = [
                ("CHAT_KAFKA_SSL_CA_FILE", &self.ssl_ca_file),
                ("CHAT_KAFKA_SSL_CERT_FILE", &self.ssl_cert_file),
                ("CHAT_KAFKA_SSL_KEY_FILE", &self.ssl_key_file),
            ]
            .into_iter()
            .find(|(_, value)| value.is_some());
            if let Some((name, _)) = tls_setting {
                return Err(config(format!(
                    "{name} is set but CHAT_KAFKA_SECURITY_PROTOCOL is {}: set it to ssl or \
                     sasl_ssl, or the certificate is never used",
                    protocol.as_str()
                )));
            }
        }
        let client_certificate = match (&self.ssl_cert_file, &self.ssl_key_file) {
            (Some(cert_file), Some(key_file)) => Some(ClientCertificate {
                cert_file: readable("CHAT_KAFKA_SSL_CERT_FILE", cert_file)?,
                key_file: readable("CHAT_KAFKA_SSL_KEY_FILE", key_file)?,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(config(
                    "CHAT_KAFKA_SSL_CERT_FILE needs CHAT_KAFKA_SSL_KEY_FILE (mutual TLS)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(config(
                    "CHAT_KAFKA_SSL_KEY_FILE needs CHAT_KAFKA_SSL_CERT_FILE (mutual TLS)".into(),
                ));
            }
        };
        let ca_file = self
            .ssl_ca_file
            .as_ref()
            .map(|ca| readable("CHAT_KAFKA_SSL_CA_FILE", ca))
            .transpose()?;
        let mut options = Vec::with_capacity(self.options.len());
        for text in &self.options {
            let (name, value) = settings::property(text)
                .map_err(|error| config(format!("CHAT_KAFKA_OPTIONS: {error}")))?;
            check_property(&name)
                .map_err(|error| config(format!("CHAT_KAFKA_OPTIONS: {error}")))?;
            options.push((name, value));
        }
        Ok(KafkaSecurity { protocol, sasl, ca_file, client_certificate, options })
    }

    fn sasl_login(&self, protocol: SecurityProtocol) -> Result<Option<SaslLogin>, LogError> {
        let config = |message: String| LogError::Config(message);
        if !protocol.uses_sasl() {
            let sasl_setting = [
                ("CHAT_KAFKA_SASL_MECHANISM", self.sasl_mechanism.is_some()),
                ("CHAT_KAFKA_SASL_USERNAME", self.sasl_username.is_some()),
                ("CHAT_KAFKA_SASL_PASSWORD_FILE", self.sasl_password_file.is_some()),
            ]
            .into_iter()
            .find(|(_, set)| *set);
            return match sasl_setting {
                Some((name, _)) => Err(config(format!(
                    "{name} is set but CHAT_KAFKA_SECURITY_PROTOCOL is {}: set it to sasl_ssl \
                     (or sasl_plaintext), or the login is never used",
                    protocol.as_str()
                ))),
                None => Ok(None),
            };
        }
        let mechanism = self
            .sasl_mechanism
            .as_deref()
            .ok_or_else(|| {
                config(format!(
                    "CHAT_KAFKA_SASL_MECHANISM is required with security protocol {}",
                    protocol.as_str()
                ))
            })?
            .parse::<SaslMechanism>()
            .map_err(|error| config(format!("CHAT_KAFKA_SASL_MECHANISM: {error}")))?;
        let username = self.sasl_username.clone().ok_or_else(|| {
            config(format!(
                "CHAT_KAFKA_SASL_USERNAME is required with security protocol {}",
                protocol.as_str()
            ))
        })?;
        let password_file = self.sasl_password_file.as_ref().ok_or_else(|| {
            config(format!(
                "CHAT_KAFKA_SASL_PASSWORD_FILE is required with security protocol {}",
                protocol.as_str()
            ))
        })?;
        let password = read_secret("CHAT_KAFKA_SASL_PASSWORD_FILE", password_file)?;
        Ok(Some(SaslLogin { mechanism, username, password }))
    }
}

impl KafkaSecurity {
    /// Writes these settings into a client's configuration.
    pub(crate) fn apply(&self, config: &mut ClientConfig) {
        config.set("security.protocol", self.protocol.as_str());
        if let Some(login) = &self.sasl {
            config
                .set("sasl.mechanism", login.mechanism.as_str())
                .set("sasl.username", &login.username)
                .set("sasl.password", login.password.expose());
        }
        if let Some(ca) = &self.ca_file {
            config.set("ssl.ca.location", ca.to_string_lossy());
        }
        if let Some(certificate) = &self.client_certificate {
            config
                .set("ssl.certificate.location", certificate.cert_file.to_string_lossy())
                .set("ssl.key.location", certificate.key_file.to_string_lossy());
        }
    }

    /// One line on how clients connect, with nothing secret in it.
    pub fn describe(&self) -> String {
        let mut text = self.protocol.as_str().to_owned();
        if let Some(login) = &self.sasl {
            text.push_str(&format!(" as {} ({})", login.username, login.mechanism.as_str()));
        }
        if self.client_certificate.is_some() {
            text.push_str(" with a client certificate");
        }
        text
    }
}

/// Properties that have a setting of their own.
const OWN_SETTINGS: [(&str, &str); 9] = [
    ("bootstrap.servers", "CHAT_KAFKA_BROKERS"),
    ("metadata.broker.list", "CHAT_KAFKA_BROKERS"),
    ("security.protocol", "CHAT_KAFKA_SECURITY_PROTOCOL"),
    ("sasl.mechanism", "CHAT_KAFKA_SASL_MECHANISM"),
    ("sasl.mechanisms", "CHAT_KAFKA_SASL_MECHANISM"),
    ("sasl.username", "CHAT_KAFKA_SASL_USERNAME"),
    ("ssl.ca.location", "CHAT_KAFKA_SSL_CA_FILE"),
    ("ssl.certificate.location", "CHAT_KAFKA_SSL_CERT_FILE"),
    ("ssl.key.location", "CHAT_KAFKA_SSL_KEY_FILE"),
];

/// Properties the delivery guarantees rest on, and why.
const GUARDED: [(&str, &str); 21] = [
    ("acks", "an append is acknowledged only when every in-sync replica has it"),
    ("request.required.acks", "an append is acknowledged only when every in-sync replica has it"),
    ("enable.idempotence", "a producer retry must never write a record twice"),
    ("max.in.flight.requests.per.connection", "the idempotent producer keeps order with at most 5"),
    ("max.in.flight", "the idempotent producer keeps order with at most 5"),
    ("enable.gapless.guarantee", "the idempotent producer's failure handling is the project's"),
    ("delivery.timeout.ms", "it is CHAT_APPEND_TIMEOUT, which the writer leases are timed against"),
    ("message.timeout.ms", "it is CHAT_APPEND_TIMEOUT, which the writer leases are timed against"),
    ("request.timeout.ms", "the writer timing and readiness are derived from it"),
    ("transactional.id", "appends are idempotent, not transactional"),
    ("transaction.timeout.ms", "appends are idempotent, not transactional"),
    ("isolation.level", "consumers read what was acknowledged, in order"),
    ("enable.auto.commit", "offsets are committed only after the projections are written"),
    ("enable.auto.offset.store", "offsets are committed only after the projections are written"),
    ("auto.commit.interval.ms", "offsets are committed only after the projections are written"),
    ("auto.offset.reset", "where a consumer starts is part of gapless resume"),
    ("group.id", "each consumer's group is chosen by its role"),
    ("group.instance.id", "it is CHAT_PROJECTOR_INSTANCE"),
    ("session.timeout.ms", "group liveness is part of the writer-lease and projector timing"),
    ("heartbeat.interval.ms", "group liveness is part of the writer-lease and projector timing"),
    ("partition.assignment.strategy", "the writer group hands partitions over cooperatively"),
];

/// Whether an operator may set librdkafka property `name`; the refusal says why not.
pub fn check_property(name: &str) -> Result<(), String> {
    if let Some((_, setting)) = OWN_SETTINGS.iter().find(|(own, _)| *own == name) {
        return Err(format!("{name} has its own setting, {setting}"));
    }
    if let Some((_, why)) = GUARDED.iter().find(|(guarded, _)| *guarded == name) {
        return Err(format!("{name} cannot be changed: {why}"));
    }
    let secret = ["password", "secret", "jaas"].iter().any(|word| name.contains(word))
        || ["ssl.key.pem", "ssl_key"].contains(&name);
    if secret {
        return Err(format!(
            "{name} would put a secret in the environment; secrets come from files \
             (CHAT_KAFKA_SASL_PASSWORD_FILE, CHAT_KAFKA_SSL_KEY_FILE)"
        ));
    }
    Ok(())
}

fn readable(setting: &str, path: &std::path::Path) -> Result<PathBuf, LogError> {
    settings::readable(path).map_err(|error| LogError::Config(format!("{setting}: {error}")))?;
    Ok(path.to_path_buf())
}

fn read_secret(setting: &str, path: &std::path::Path) -> Result<Secret, LogError> {
    Secret::read_file(path).map_err(|error| LogError::Config(format!("{setting}: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(settings: &KafkaSecuritySettings) -> String {
        match settings.resolve() {
            Err(LogError::Config(message)) => message,
            other => format!("not refused: {other:?}"),
        }
    }

    #[test]
    fn plaintext_is_the_default_and_needs_nothing() -> Result<(), LogError> {
        let security = KafkaSecuritySettings::default().resolve()?;
        assert_eq!(security, KafkaSecurity::default());
        assert_eq!(security.describe(), "plaintext");
        Ok(())
    }

    #[test]
    fn sasl_needs_a_mechanism_a_user_and_a_readable_password_file() -> anyhow_free::Result {
        let dir = tempfile::tempdir()?;
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret\n")?;
        let settings = KafkaSecuritySettings {
            protocol: Some("SASL_SSL".into()),
            sasl_mechanism: Some("scram-sha-512".into()),
            sasl_username: Some("chat".into()),
            sasl_password_file: Some(password.clone()),
            ..KafkaSecuritySettings::default()
        };
        let security = settings.resolve()?;
        assert_eq!(security.describe(), "sasl_ssl as chat (SCRAM-SHA-512)");
        let login = security.sasl.clone().ok_or("no login")?;
        assert_eq!(login.password.expose(), "s3cret");
        assert!(!format!("{security:?}").contains("s3cret"), "the password never prints");
        let mut client = ClientConfig::new();
        security.apply(&mut client);
        assert_eq!(client.get("sasl.password"), Some("s3cret"));
        assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));

        let without = |change: fn(&mut KafkaSecuritySettings)| {
            let mut changed = settings.clone();
            change(&mut changed);
            refusal(&changed)
        };
        assert!(
            without(|s| s.sasl_mechanism = None)
                .starts_with("CHAT_KAFKA_SASL_MECHANISM is required")
        );
        assert!(
            without(|s| s.sasl_username = None).starts_with("CHAT_KAFKA_SASL_USERNAME is required")
        );
        assert!(
            without(|s| s.sasl_password_file = None)
                .starts_with("CHAT_KAFKA_SASL_PASSWORD_FILE is required")
        );
        assert!(
            without(|s| s.sasl_mechanism = Some("GSSAPI".into()))
                .starts_with("CHAT_KAFKA_SASL_MECHANISM: \"GSSAPI\"")
        );
        assert!(
            without(|s| s.protocol = Some("tls".into()))
                .starts_with("CHAT_KAFKA_SECURITY_PROTOCOL: \"tls\"")
        );
        assert!(
            without(|s| s.protocol = Some("ssl".into()))
                .starts_with("CHAT_KAFKA_SASL_MECHANISM is set but")
        );
        let missing = without(|s| s.sasl_password_file = Some("/nonexistent/password".into()));
        assert!(
            missing.starts_with("CHAT_KAFKA_SASL_PASSWORD_FILE: cannot read /nonexistent/password"),
            "{missing}"
        );
        std::fs::write(&password, "\n")?;
        assert!(refusal(&settings).ends_with("the file is empty"));
        Ok(())
    }

    #[test]
    fn certificates_need_tls_and_come_in_pairs() -> anyhow_free::Result {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("pem");
        std::fs::write(&file, "pem")?;
        let tls = KafkaSecuritySettings {
            protocol: Some("ssl".into()),
            ssl_ca_file: Some(file.clone()),
            ssl_cert_file: Some(file.clone()),
            ssl_key_file: Some(file),
            ..KafkaSecuritySettings::default()
        };
        assert_eq!(tls.resolve()?.describe(), "ssl with a client certificate");
        let plaintext = KafkaSecuritySettings { protocol: None, ..tls.clone() };
        assert!(refusal(&plaintext).starts_with("CHAT_KAFKA_SSL_CA_FILE is set but"));
        let half = KafkaSecuritySettings { ssl_key_file: None, ..tls };
        assert_eq!(
            refusal(&half),
            "CHAT_KAFKA_SSL_CERT_FILE needs CHAT_KAFKA_SSL_KEY_FILE (mutual TLS)"
        );
        Ok(())
    }

    #[test]
    fn options_tune_but_never_touch_the_guarantees_or_carry_secrets() -> anyhow_free::Result {
        let with = |option: &str| KafkaSecuritySettings {
            options: vec![option.to_owned()],
            ..KafkaSecuritySettings::default()
        };
        let tuned = with("socket.send.buffer.bytes = 1048576").resolve()?;
        assert_eq!(tuned.options, [("socket.send.buffer.bytes".to_owned(), "1048576".to_owned())]);
        for guarded in [
            "acks=1",
            "enable.idempotence=false",
            "delivery.timeout.ms=60000",
            "isolation.level=read_uncommitted",
            "enable.auto.commit=true",
            "message.timeout.ms=1",
        ] {
            assert!(refusal(&with(guarded)).contains("cannot be changed"), "{guarded}");
        }
        assert!(refusal(&with("sasl.password=x")).contains("secrets come from files"));
        assert!(refusal(&with("ssl.key.password=x")).contains("secrets come from files"));
        assert!(
            refusal(&with("sasl.oauthbearer.client.secret=x")).contains("secrets come from files")
        );
        assert!(
            refusal(&with("sasl.username=x")).contains("its own setting, CHAT_KAFKA_SASL_USERNAME")
        );
        assert!(refusal(&with("no-equals")).contains("is not name=value"));
        Ok(())
    }

    /// Test results without a dependency on `anyhow` in this crate.
    mod anyhow_free {
        pub(super) type Result = std::result::Result<(), Box<dyn std::error::Error>>;
    }
}
