//! The roles on a secured cluster (`infra/local/up --secure`, which `scripts/test` starts):
//! the settings `infra/local/status --env` prints reach both backends, and a role that
//! cannot authenticate, does not trust the server's certificate, or meets a listener that
//! speaks another protocol exits within 30 s with one line naming the setting at fault,
//! never a secret. Runs with `--features cluster-tests`; without a secured cluster it fails.

#![cfg(feature = "cluster-tests")]
#![allow(clippy::unwrap_used)]

use testkit as support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Role, Server};

/// How long a refused role may take to say so and exit.
const REFUSED_WITHIN: Duration = Duration::from_secs(30);

/// A file of the secured cluster's state, beside the CA the settings name.
fn secure_file(name: &str) -> PathBuf {
    let ca = std::env::var("CHAT_KAFKA_SSL_CA_FILE").expect(
        "these tests need the secured cluster: infra/local/up --secure, then \
         eval \"$(infra/local/status --env)\"",
    );
    PathBuf::from(ca).with_file_name(name)
}

fn secured_cluster_settings() {
    let protocol = std::env::var("CHAT_KAFKA_SECURITY_PROTOCOL").unwrap_or_default();
    assert_eq!(protocol, "sasl_ssl", "the cluster tests run on infra/local/up --secure");
    assert!(std::env::var("CHAT_CQL_SSL_CA_FILE").is_ok(), "CQL over TLS");
    assert!(std::env::var("CHAT_CQL_PASSWORD_FILE").is_ok(), "CQL with a password");
}

/// Runs `command` until it exits (at most [`REFUSED_WITHIN`]): (exited in time, success,
/// its last stderr line).
fn run_refused(mut command: Command) -> (bool, bool, String) {
    let mut child = command
        .args(["--listen", "127.0.0.1:0", "--internal-listen", "127.0.0.1:0"])
        .env("CHAT_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > REFUSED_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    (status.is_some(), status.is_some_and(|status| status.success()), last)
}

/// The role exits in time, unsuccessfully, with one line naming `setting` and saying
/// `what`, and without the secret files' contents.
fn assert_refused(command: Command, setting: &str, what: &str) {
    let (exited, succeeded, line) = run_refused(command);
    assert!(exited, "still running after {REFUSED_WITHIN:?}; last said: {line}");
    assert!(!succeeded, "exited successfully: {line}");
    assert!(line.starts_with("chat: "), "the last line is the reason: {line}");
    assert!(line.contains(setting), "{setting} is not named: {line}");
    assert!(line.contains(what), "{what:?} is not said: {line}");
    for secret in ["kafka-chat.password", "cql-chat.password"] {
        let value = std::fs::read_to_string(secure_file(secret)).unwrap();
        assert!(!line.contains(value.trim()), "the line shows a password: {line}");
    }
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn config_check_connect_reaches_both_backends_with_the_printed_settings() {
    secured_cluster_settings();
    let server = Server::start();
    let mut command = server.command("config");
    command.args(["check", "--connect", "ingest"]).stderr(Stdio::piped());
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let kafka = stdout.lines().find(|line| line.starts_with("connect: kafka")).unwrap_or_default();
    assert!(
        kafka.contains(": ok: 3 broker(s) (sasl_ssl as chat (SCRAM-SHA-512))")
            && kafka.contains("has 4 partitions"),
        "{stdout}"
    );
    let cql = stdout.lines().find(|line| line.starts_with("connect: cql")).unwrap_or_default();
    assert!(cql.contains(": ok: ") && cql.contains("TLS as chat") && cql.contains("is migrated"));

    let dir = tempfile::tempdir().unwrap();
    let wrong = write_file(&dir, "wrong", "not-the-password\n");
    let mut command = server.command("config");
    command.args(["check", "--connect", "ingest"]).env("CHAT_CQL_PASSWORD_FILE", &wrong);
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.lines().any(|line| line.starts_with("connect: kafka") && line.contains(": ok: "))
    );
    let cql = stdout.lines().find(|line| line.starts_with("connect: cql")).unwrap_or_default();
    assert!(cql.contains("FAILED") && cql.contains("CHAT_CQL_PASSWORD_FILE"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_refused_by_name() {
    secured_cluster_settings();
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let wrong = write_file(&dir, "wrong", "not-the-password\n");
    let mut kafka = server.command("ingest");
    kafka.env("CHAT_KAFKA_SASL_PASSWORD_FILE", &wrong);
    assert_refused(kafka, "CHAT_KAFKA_SASL_PASSWORD_FILE", "Kafka refused the login");
    let mut cql = server.command("fanout");
    cql.env("CHAT_CQL_PASSWORD_FILE", &wrong);
    assert_refused(cql, "CHAT_CQL_PASSWORD_FILE", "the database refused the login");
    let mut nobody = server.command("ingest");
    nobody.env("CHAT_KAFKA_SASL_USERNAME", "nobody");
    assert_refused(nobody, "CHAT_KAFKA_SASL_USERNAME=nobody", "Kafka refused the login");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_an_untrusted_ca_is_refused_by_name() {
    secured_cluster_settings();
    let server = Server::start();
    let other_ca = secure_file("other-ca.pem");
    let mut kafka = server.command("ingest");
    kafka.env("CHAT_KAFKA_SSL_CA_FILE", &other_ca);
    assert_refused(kafka, "CHAT_KAFKA_SSL_CA_FILE", "certificate is not trusted");
    let mut cql = server.command("ingest");
    cql.env("CHAT_CQL_SSL_CA_FILE", &other_ca);
    assert_refused(cql, "CHAT_CQL_SSL_CA_FILE", "certificate is not trusted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plaintext_client_is_refused_by_name() {
    secured_cluster_settings();
    let server = Server::start();
    let mut kafka = server.command("ingest");
    kafka
        .env("CHAT_KAFKA_SECURITY_PROTOCOL", "plaintext")
        .env_remove("CHAT_KAFKA_SASL_MECHANISM")
        .env_remove("CHAT_KAFKA_SASL_USERNAME")
        .env_remove("CHAT_KAFKA_SASL_PASSWORD_FILE")
        .env_remove("CHAT_KAFKA_SSL_CA_FILE");
    assert_refused(kafka, "CHAT_KAFKA_SECURITY_PROTOCOL=plaintext", "it wants TLS");
    let mut cql = server.command("ingest");
    cql.env_remove("CHAT_CQL_SSL_CA_FILE");
    assert_refused(cql, "CHAT_CQL_SSL_CA_FILE", "closed the connection");
    let mut anonymous = server.command("ingest");
    anonymous.env_remove("CHAT_CQL_USERNAME").env_remove("CHAT_CQL_PASSWORD_FILE");
    assert_refused(anonymous, "CHAT_CQL_USERNAME", "requires a login");
}

/// TLS asked for, and the address answers in plaintext: a real plaintext listener (the
/// projector's own internal HTTP one) stands where the brokers or the nodes should be.
#[tokio::test(flavor = "multi_thread")]
async fn tls_asked_of_a_plaintext_listener_is_refused_by_name() {
    secured_cluster_settings();
    let server = Server::start();
    let plaintext = server.internal_url(Role::Projector, 0, "");
    let plaintext = plaintext.trim_start_matches("http://").to_owned();
    let mut kafka = server.command("ingest");
    kafka.env("CHAT_KAFKA_BROKERS", &plaintext);
    assert_refused(kafka, "CHAT_KAFKA_SECURITY_PROTOCOL=sasl_ssl", "answered without it");
    let mut cql = server.command("ingest");
    cql.env("CHAT_CQL_NODES", &plaintext);
    assert_refused(cql, "CHAT_CQL_SSL_CA_FILE", "answered without it");
}
