//! How a session reaches the database: credentials, TLS, the local datacenter, the
//! consistency of every statement; and why the database would not talk to this process,
//! in one line that names the setting at fault.
//!
//! Settings are named by their `CHAT_CQL_*` variables, as operators set them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslConnectorBuilder, SslFiletype, SslMethod, SslVerifyMode};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::{Consistency, SerialConsistency};
use settings::Secret;

use super::CqlConfig;
use crate::StoreError;

/// A CQL role and its password (read from `CHAT_CQL_PASSWORD_FILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CqlLogin {
    pub username: String,
    pub password: Secret,
}

/// TLS to every node: the CAs node certificates must chain to (their certificates must
/// name the node's IP address: the driver checks it), and a client certificate for mutual
/// TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CqlTls {
    pub ca_file: PathBuf,
    pub client_certificate: Option<(PathBuf, PathBuf)>,
}

/// How sessions authenticate, encrypt and route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CqlSecurity {
    pub login: Option<CqlLogin>,
    pub tls: Option<CqlTls>,
    /// Requests go to this datacenter's nodes only, and `LOCAL_QUORUM` is a quorum of it.
    pub local_dc: Option<String>,
}

/// The raw settings, as the command line or the environment give them.
#[derive(Debug, Clone, Default)]
pub struct CqlSecuritySettings {
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ssl_ca_file: Option<PathBuf>,
    pub ssl_cert_file: Option<PathBuf>,
    pub ssl_key_file: Option<PathBuf>,
    pub local_dc: Option<String>,
}

/// The variables [`CqlSecuritySettings::from_env`] reads, which the binary's flags also
/// take.
pub const SECURITY_VARIABLES: [&str; 6] = [
    "CHAT_CQL_USERNAME",
    "CHAT_CQL_PASSWORD_FILE",
    "CHAT_CQL_SSL_CA_FILE",
    "CHAT_CQL_SSL_CERT_FILE",
    "CHAT_CQL_SSL_KEY_FILE",
    "CHAT_CQL_LOCAL_DC",
];

impl CqlSecuritySettings {
    /// The settings in the process environment: for tools and tests that reach the
    /// database without the binary's command line.
    pub fn from_env() -> Self {
        let text = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let path = |name: &str| text(name).map(PathBuf::from);
        Self {
            username: text("CHAT_CQL_USERNAME"),
            password_file: path("CHAT_CQL_PASSWORD_FILE"),
            ssl_ca_file: path("CHAT_CQL_SSL_CA_FILE"),
            ssl_cert_file: path("CHAT_CQL_SSL_CERT_FILE"),
            ssl_key_file: path("CHAT_CQL_SSL_KEY_FILE"),
            local_dc: text("CHAT_CQL_LOCAL_DC"),
        }
    }

    /// Checks the settings together and reads the password file.
    pub fn resolve(&self) -> Result<CqlSecurity, StoreError> {
        let config = |message: &str| StoreError::Config(message.to_owned());
        let login = match (&self.username, &self.password_file) {
            (Some(username), Some(file)) => Some(CqlLogin {
                username: username.clone(),
                password: read_secret("CHAT_CQL_PASSWORD_FILE", file)?,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(config("CHAT_CQL_USERNAME needs CHAT_CQL_PASSWORD_FILE"));
            }
            (None, Some(_)) => {
                return Err(config("CHAT_CQL_PASSWORD_FILE needs CHAT_CQL_USERNAME"));
            }
        };
        let client_certificate = match (&self.ssl_cert_file, &self.ssl_key_file) {
            (Some(cert), Some(key)) => Some((
                readable("CHAT_CQL_SSL_CERT_FILE", cert)?,
                readable("CHAT_CQL_SSL_KEY_FILE", key)?,
            )),
            (None, None) => None,
            (Some(_), None) => {
                return Err(config(
                    "CHAT_CQL_SSL_CERT_FILE needs CHAT_CQL_SSL_KEY_FILE (mutual TLS)",
                ));
            }
            (None, Some(_)) => {
                return Err(config(
                    "CHAT_CQL_SSL_KEY_FILE needs CHAT_CQL_SSL_CERT_FILE (mutual TLS)",
                ));
            }
        };
        let tls = match (&self.ssl_ca_file, client_certificate) {
            (Some(ca), client_certificate) => {
                Some(CqlTls { ca_file: readable("CHAT_CQL_SSL_CA_FILE", ca)?, client_certificate })
            }
            (None, None) => None,
            (None, Some(_)) => {
                return Err(config(
                    "CHAT_CQL_SSL_CERT_FILE needs CHAT_CQL_SSL_CA_FILE: TLS to the database \
                     verifies the nodes against it",
                ));
            }
        };
        let local_dc = self.local_dc.clone();
        if local_dc
            .as_deref()
            .is_some_and(|dc| dc.trim().is_empty() || dc.contains(char::is_control))
        {
            return Err(config("CHAT_CQL_LOCAL_DC must name a datacenter"));
        }
        Ok(CqlSecurity { login, tls, local_dc })
    }
}

impl CqlSecurity {
    /// One line on how sessions connect, with nothing secret in it.
    pub fn describe(&self) -> String {
        let mut parts = vec![if self.tls.is_some() { "TLS" } else { "plaintext" }.to_owned()];
        if let Some(login) = &self.login {
            parts.push(format!("as {}", login.username));
        }
        if self.tls.as_ref().is_some_and(|tls| tls.client_certificate.is_some()) {
            parts.push("with a client certificate".to_owned());
        }
        if let Some(dc) = &self.local_dc {
            parts.push(format!("in datacenter {dc}"));
        }
        parts.join(" ")
    }

    fn ssl_connector(&self, tls: &CqlTls) -> Result<SslConnectorBuilder, StoreError> {
        let setting = |name: &str, error: openssl::error::ErrorStack| {
            StoreError::Config(format!("{name}: {error}"))
        };
        let mut builder = SslConnector::builder(SslMethod::tls_client())
            .map_err(|error| StoreError::Config(format!("TLS: {error}")))?;
        builder
            .set_ca_file(&tls.ca_file)
            .map_err(|error| setting("CHAT_CQL_SSL_CA_FILE", error))?;
        builder.set_verify(SslVerifyMode::PEER);
        if let Some((cert, key)) = &tls.client_certificate {
            builder
                .set_certificate_chain_file(cert)
                .map_err(|error| setting("CHAT_CQL_SSL_CERT_FILE", error))?;
            builder
                .set_private_key_file(key, SslFiletype::PEM)
                .map_err(|error| setting("CHAT_CQL_SSL_KEY_FILE", error))?;
            builder.check_private_key().map_err(|error| setting("CHAT_CQL_SSL_KEY_FILE", error))?;
        }
        Ok(builder)
    }
}

/// How long the first connection may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A session with these settings. Every statement runs at `LOCAL_QUORUM` (a quorum of the
/// local datacenter's replicas: reads see every acknowledged write of it, and a remote
/// datacenter's outage costs nothing); lightweight transactions (the job directory, the
/// writer leases) at `SERIAL`, since they must exclude each other across datacenters.
pub async fn open_session(config: &CqlConfig) -> Result<Session, StoreError> {
    let security = &config.security;
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(dc) = &security.local_dc {
        policy = policy.prefer_datacenter(dc.clone()).permit_dc_failover(false);
    }
    let profile = ExecutionProfile::builder()
        .consistency(Consistency::LocalQuorum)
        .serial_consistency(Some(SerialConsistency::Serial))
        .request_timeout(Some(config.request_timeout))
        .load_balancing_policy(policy.build())
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&config.nodes)
        .connection_timeout(CONNECT_TIMEOUT)
        .default_execution_profile_handle(profile.into_handle());
    if let Some(login) = &security.login {
        builder = builder.user(login.username.clone(), login.password.expose().to_owned());
    }
    if let Some(tls) = &security.tls {
        let connector = security.ssl_connector(tls)?;
        builder =
            builder.tls_context(Some(scylla::client::session::OpenSsl010Config::new(connector)));
    }
    let session = builder
        .build()
        .await
        .map_err(|error| refusal_or_unavailable(config, &error.to_string()))?;
    if let Some(dc) = &security.local_dc {
        let known = datacenters(&session);
        if !known.contains(dc) {
            return Err(StoreError::Refused(format!(
                "CHAT_CQL_LOCAL_DC={dc} names no datacenter of the cluster at {} (it has {})",
                config.nodes.join(","),
                known.join(", ")
            )));
        }
    }
    Ok(session)
}

/// The datacenters of the cluster's nodes, each once.
pub(super) fn datacenters(session: &Session) -> Vec<String> {
    let state = session.get_cluster_state();
    let mut names: Vec<String> =
        state.get_nodes_info().iter().filter_map(|node| node.datacenter.clone()).collect();
    names.sort();
    names.dedup();
    names
}

/// What a refusal was about, which decides the settings it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusalKind {
    Credentials,
    LoginRequired,
    UntrustedCertificate,
    ListenerWithoutTls,
    ListenerWantsTls,
    NotPermitted,
    UnknownDatacenter,
}

/// Reads the driver's (and the database's) words for refusals.
pub(crate) fn refusal_kind(text: &str, tls: bool) -> Option<RefusalKind> {
    let text = text.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|word| text.contains(word));
    if any(&["username", "password are incorrect", "authenticationerror", "authentication error"]) {
        return Some(RefusalKind::Credentials);
    }
    if any(&["requires authentication", "authenticator", "missing authentication"]) {
        return Some(RefusalKind::LoginRequired);
    }
    if any(&["certificate verify failed"]) {
        return Some(RefusalKind::UntrustedCertificate);
    }
    if tls
        && any(&[
            "wrong version number",
            "packet length too long",
            "unexpected eof",
            "record layer",
        ])
    {
        return Some(RefusalKind::ListenerWithoutTls);
    }
    if !tls
        && any(&["connection reset", "broken pipe", "unexpected end of file", "connection closed"])
    {
        return Some(RefusalKind::ListenerWantsTls);
    }
    if any(&["unauthorized", "has no", "permission"]) {
        return Some(RefusalKind::NotPermitted);
    }
    if any(&["datacenter", "no nodes in the preferred"]) {
        return Some(RefusalKind::UnknownDatacenter);
    }
    None
}

fn refusal_or_unavailable(config: &CqlConfig, error: &str) -> StoreError {
    let security = &config.security;
    let nodes = config.nodes.join(",");
    let user = security.login.as_ref().map_or("(unset)", |login| login.username.as_str());
    let what = match refusal_kind(error, security.tls.is_some()) {
        Some(RefusalKind::Credentials) => format!(
            "the database refused the login (CHAT_CQL_USERNAME={user}, password from \
             CHAT_CQL_PASSWORD_FILE): check both"
        ),
        Some(RefusalKind::LoginRequired) => {
            "the database requires a login: set CHAT_CQL_USERNAME and CHAT_CQL_PASSWORD_FILE"
                .to_owned()
        }
        Some(RefusalKind::UntrustedCertificate) => format!(
            "the database's certificate is not trusted: CHAT_CQL_SSL_CA_FILE={} must hold the \
             CA that signed it, and the certificate must name each node's IP address",
            security.tls.as_ref().map_or("(unset)".into(), |tls| tls.ca_file.display().to_string())
        ),
        Some(RefusalKind::ListenerWithoutTls) => format!(
            "CHAT_CQL_SSL_CA_FILE asks for TLS, but the nodes at {nodes} answered without it"
        ),
        Some(RefusalKind::ListenerWantsTls) => format!(
            "the nodes at {nodes} closed the connection: if they require TLS, set \
             CHAT_CQL_SSL_CA_FILE"
        ),
        Some(RefusalKind::NotPermitted) => {
            format!("the database role CHAT_CQL_USERNAME={user} lacks a permission the chat needs")
        }
        Some(RefusalKind::UnknownDatacenter) => format!(
            "CHAT_CQL_LOCAL_DC={} names no datacenter of the cluster",
            security.local_dc.as_deref().unwrap_or("(unset)")
        ),
        None => return StoreError::Unavailable(format!("cannot connect to {nodes}: {error}")),
    };
    StoreError::Refused(format!("{what} ({})", error.trim().replace('\n', " ")))
}

/// A query refused for a missing permission, named as a refusal (asking again cannot help).
pub(crate) fn not_permitted(config: &CqlConfig, error: &str) -> Option<StoreError> {
    let unauthorized = error.to_ascii_lowercase().contains("unauthorized");
    unauthorized.then(|| refusal_or_unavailable(config, error))
}

fn readable(setting: &str, path: &Path) -> Result<PathBuf, StoreError> {
    settings::readable(path).map_err(|error| StoreError::Config(format!("{setting}: {error}")))?;
    Ok(path.to_path_buf())
}

fn read_secret(setting: &str, path: &Path) -> Result<Secret, StoreError> {
    Secret::read_file(path).map_err(|error| StoreError::Config(format!("{setting}: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Result = std::result::Result<(), Box<dyn std::error::Error>>;

    fn refusal(settings: &CqlSecuritySettings) -> String {
        match settings.resolve() {
            Err(StoreError::Config(message)) => message,
            other => format!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_login_needs_both_halves_and_a_readable_password() -> Result {
        let dir = tempfile::tempdir()?;
        let password = dir.path().join("password");
        std::fs::write(&password, "hunter2\n")?;
        let settings = CqlSecuritySettings {
            username: Some("chat".into()),
            password_file: Some(password),
            local_dc: Some("eu-west".into()),
            ..CqlSecuritySettings::default()
        };
        let security = settings.resolve()?;
        assert_eq!(security.describe(), "plaintext as chat in datacenter eu-west");
        assert!(!format!("{security:?}").contains("hunter2"));
        let half = CqlSecuritySettings { password_file: None, ..settings.clone() };
        assert_eq!(refusal(&half), "CHAT_CQL_USERNAME needs CHAT_CQL_PASSWORD_FILE");
        let blank_dc = CqlSecuritySettings { local_dc: Some(" ".into()), ..settings };
        assert_eq!(refusal(&blank_dc), "CHAT_CQL_LOCAL_DC must name a datacenter");
        Ok(())
    }

    #[test]
    fn tls_needs_a_ca_and_certificates_come_in_pairs() -> Result {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("pem");
        std::fs::write(&file, "pem")?;
        let tls = CqlSecuritySettings {
            ssl_ca_file: Some(file.clone()),
            ssl_cert_file: Some(file.clone()),
            ssl_key_file: Some(file),
            ..CqlSecuritySettings::default()
        };
        assert_eq!(tls.resolve()?.describe(), "TLS with a client certificate");
        let no_ca = CqlSecuritySettings { ssl_ca_file: None, ..tls.clone() };
        assert!(refusal(&no_ca).starts_with("CHAT_CQL_SSL_CERT_FILE needs CHAT_CQL_SSL_CA_FILE"));
        let half = CqlSecuritySettings { ssl_key_file: None, ..tls };
        assert!(refusal(&half).starts_with("CHAT_CQL_SSL_CERT_FILE needs CHAT_CQL_SSL_KEY_FILE"));
        let missing = CqlSecuritySettings {
            ssl_ca_file: Some("/nonexistent/ca.pem".into()),
            ..CqlSecuritySettings::default()
        };
        assert!(
            refusal(&missing).starts_with("CHAT_CQL_SSL_CA_FILE: cannot read /nonexistent/ca.pem")
        );
        Ok(())
    }

    #[test]
    fn refusals_name_their_setting_and_nothing_secret() -> Result {
        let dir = tempfile::tempdir()?;
        let password = dir.path().join("password");
        std::fs::write(&password, "hunter2")?;
        let mut config = CqlConfig::new(["127.0.0.1:9042".to_owned()], "chat");
        config.security = CqlSecuritySettings {
            username: Some("chat".into()),
            password_file: Some(password),
            ..CqlSecuritySettings::default()
        }
        .resolve()?;
        let refused = refusal_or_unavailable(
            &config,
            "Control connection pool error: Authentication error on the server side, Error \
             message: Provided username chat and/or password are incorrect",
        );
        let StoreError::Refused(message) = refused else { return Err("not a refusal".into()) };
        assert!(
            message.starts_with("the database refused the login (CHAT_CQL_USERNAME=chat"),
            "{message}"
        );
        assert!(!message.contains("hunter2"));
        let down = refusal_or_unavailable(&config, "Connection refused (os error 111)");
        assert!(matches!(down, StoreError::Unavailable(_)), "{down:?}");
        Ok(())
    }
}
