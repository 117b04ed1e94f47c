//! Where the cluster is, and how every client of Kafka and every CQL session authenticates
//! and encrypts (secrets from files only).

use std::path::PathBuf;

use clap::Args;

/// Where the cluster is.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClusterArgs {
    /// Kafka bootstrap servers, `host:port[,host:port...]`.
    #[arg(long, env = "CHAT_KAFKA_BROKERS")]
    pub kafka_brokers: String,
    /// The topic that is the event log.
    #[arg(long, env = "CHAT_TOPIC", default_value = "chat.events")]
    pub topic: String,
    /// The topic for typing, presence and inbox signals.
    #[arg(long, env = "CHAT_SIGNALS_TOPIC", default_value = "chat.signals")]
    pub signals_topic: String,
    /// CQL contact points, `host:port[,host:port...]`.
    #[arg(long, env = "CHAT_CQL_NODES", value_delimiter = ',', required = true)]
    pub cql_nodes: Vec<String>,
    /// The keyspace of the directory and the projections.
    #[arg(long, env = "CHAT_KEYSPACE", default_value = "chat")]
    pub keyspace: String,
    #[command(flatten)]
    pub kafka_security: KafkaSecurityArgs,
    #[command(flatten)]
    pub cql_security: CqlSecurityArgs,
}

/// How every Kafka client of a role authenticates and encrypts. Secrets come from files
/// (a Kubernetes Secret mount), never from a flag or a variable.
#[derive(Debug, Clone, Args)]
pub(crate) struct KafkaSecurityArgs {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[arg(long, env = "CHAT_KAFKA_SECURITY_PROTOCOL", default_value = "plaintext")]
    pub kafka_security_protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (with a `sasl_*` protocol).
    #[arg(long, env = "CHAT_KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,
    /// The SASL user.
    #[arg(long, env = "CHAT_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    /// A file holding the SASL user's password (one line).
    #[arg(long, env = "CHAT_KAFKA_SASL_PASSWORD_FILE")]
    pub kafka_sasl_password_file: Option<PathBuf>,
    /// CA certificates (PEM) the brokers' certificates must chain to (default: the
    /// system's).
    #[arg(long, env = "CHAT_KAFKA_SSL_CA_FILE")]
    pub kafka_ssl_ca_file: Option<PathBuf>,
    /// This client's certificate (PEM), for mutual TLS.
    #[arg(long, env = "CHAT_KAFKA_SSL_CERT_FILE")]
    pub kafka_ssl_cert_file: Option<PathBuf>,
    /// This client's private key (PEM, unencrypted), for mutual TLS.
    #[arg(long, env = "CHAT_KAFKA_SSL_KEY_FILE")]
    pub kafka_ssl_key_file: Option<PathBuf>,
    /// Further librdkafka properties, `name=value` (repeat the flag, or separate them by
    /// `;` in the variable). Those the guarantees rest on are refused by name.
    #[arg(long = "kafka-option", env = "CHAT_KAFKA_OPTIONS", value_delimiter = ';')]
    pub kafka_options: Vec<String>,
}

#[cfg(feature = "cluster")]
impl KafkaSecurityArgs {
    pub(crate) fn settings(&self) -> eventlog::kafka_security::KafkaSecuritySettings {
        eventlog::kafka_security::KafkaSecuritySettings {
            protocol: Some(self.kafka_security_protocol.clone()),
            sasl_mechanism: self.kafka_sasl_mechanism.clone(),
            sasl_username: self.kafka_sasl_username.clone(),
            sasl_password_file: self.kafka_sasl_password_file.clone(),
            ssl_ca_file: self.kafka_ssl_ca_file.clone(),
            ssl_cert_file: self.kafka_ssl_cert_file.clone(),
            ssl_key_file: self.kafka_ssl_key_file.clone(),
            options: self.kafka_options.clone(),
        }
    }
}

/// How the roles' CQL sessions authenticate, encrypt and route.
#[derive(Debug, Clone, Args)]
pub(crate) struct CqlSecurityArgs {
    /// The database role.
    #[arg(long, env = "CHAT_CQL_USERNAME")]
    pub cql_username: Option<String>,
    /// A file holding the role's password (one line).
    #[arg(long, env = "CHAT_CQL_PASSWORD_FILE")]
    pub cql_password_file: Option<PathBuf>,
    /// CA certificates (PEM) the nodes' certificates must chain to; setting it turns TLS on.
    #[arg(long, env = "CHAT_CQL_SSL_CA_FILE")]
    pub cql_ssl_ca_file: Option<PathBuf>,
    /// This client's certificate (PEM), for mutual TLS.
    #[arg(long, env = "CHAT_CQL_SSL_CERT_FILE")]
    pub cql_ssl_cert_file: Option<PathBuf>,
    /// This client's private key (PEM, unencrypted), for mutual TLS.
    #[arg(long, env = "CHAT_CQL_SSL_KEY_FILE")]
    pub cql_ssl_key_file: Option<PathBuf>,
    /// This process's datacenter: requests go to its nodes, `LOCAL_QUORUM` is a quorum of it.
    #[arg(long, env = "CHAT_CQL_LOCAL_DC")]
    pub cql_local_dc: Option<String>,
}

#[cfg(feature = "cluster")]
impl CqlSecurityArgs {
    pub(crate) fn settings(&self) -> viewstore::cql::CqlSecuritySettings {
        viewstore::cql::CqlSecuritySettings {
            username: self.cql_username.clone(),
            password_file: self.cql_password_file.clone(),
            ssl_ca_file: self.cql_ssl_ca_file.clone(),
            ssl_cert_file: self.cql_ssl_cert_file.clone(),
            ssl_key_file: self.cql_ssl_key_file.clone(),
            local_dc: self.cql_local_dc.clone(),
        }
    }
}
