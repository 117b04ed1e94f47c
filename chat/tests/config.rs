//! `chat config check`: a role's configuration validated without starting it, printed with
//! its sources and with secrets redacted.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn check(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat"));
    command.args(["config", "check"]).args(args).env_clear();
    command.envs(env.iter().copied());
    command.output().unwrap()
}

#[cfg(feature = "cluster")]
const SECRET: &str = "a-secret-that-is-long-enough-for-hs256-0123";

// Checking a role of the cluster needs its backends built in.
#[cfg(feature = "cluster")]
#[test]
fn a_valid_configuration_is_printed_with_sources_and_secrets_redacted() {
    let out = check(
        &["ingest", "--cql-nodes", "scylla:9042", "--advertise", "10.0.0.7:8080"],
        &[
            ("CHAT_KAFKA_BROKERS", "kafka:9092"),
            ("CHAT_JWT_SECRET", SECRET),
            ("CHAT_SEND_RATE", "25"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("chat ingest: the configuration is valid"), "{stdout}");
    let line = |flag: &str| {
        stdout
            .lines()
            .find(|line| line.trim_start().starts_with(flag))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("--kafka-brokers ").contains("kafka:9092")
            && line("--kafka-brokers ").ends_with("(environment)")
    );
    assert!(line("--cql-nodes ").ends_with("(flag)"), "{}", line("--cql-nodes "));
    assert!(line("--send-rate ").contains("25"));
    assert!(
        line("--writer-lease ").contains("20s") && line("--writer-lease ").ends_with("(default)")
    );
    assert!(line("--jwt-secret ").contains("<redacted>"));
    assert!(!stdout.contains(SECRET), "the secret is never printed");
}

// Checking a role of the cluster needs its backends built in.
#[cfg(feature = "cluster")]
#[test]
fn an_invalid_configuration_fails_with_the_reason() {
    let short = check(
        &["fanout", "--kafka-brokers", "k:9092", "--cql-nodes", "s:9042"],
        &[("CHAT_JWT_SECRET", "short")],
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 32 bytes"));

    let timing = check(
        &["ingest", "--kafka-brokers", "k:9092", "--cql-nodes", "s:9042", "--advertise", "h:1"],
        &[("CHAT_JWT_SECRET", SECRET), ("CHAT_WRITER_LEASE", "5s")],
    );
    assert!(!timing.status.success());
    assert!(String::from_utf8_lossy(&timing.stderr).contains("lease 5s"), "{timing:?}");

    let unreachable = check(
        &[
            "ingest",
            "--kafka-brokers",
            "k:9092",
            "--cql-nodes",
            "s:9042",
            "--internal-listen",
            "0.0.0.0:9080",
        ],
        &[("CHAT_JWT_SECRET", SECRET)],
    );
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("--advertise"));

    let shared = check(
        &["ingest", "--kafka-brokers", "k:9092", "--cql-nodes", "s:9042"],
        &[
            ("CHAT_JWT_SECRET", SECRET),
            ("CHAT_LISTEN", "127.0.0.1:7000"),
            ("CHAT_INTERNAL_LISTEN", "127.0.0.1:7000"),
        ],
    );
    assert!(!shared.status.success());
    assert!(
        String::from_utf8_lossy(&shared.stderr).contains("must not be served where the public is")
    );

    let protocol = check(
        &["projector", "--kafka-brokers", "k:9092", "--cql-nodes", "s:9042"],
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")],
    );
    assert!(!protocol.status.success());
    assert!(String::from_utf8_lossy(&protocol.stderr).contains("OTEL_EXPORTER_OTLP_PROTOCOL"));

    let missing = check(&["projector", "--cql-nodes", "s:9042"], &[]);
    assert!(!missing.status.success(), "the brokers are required");
}

#[test]
fn values_a_role_cannot_run_with_are_refused_by_name() {
    // Each of these was accepted once: a zero ping panicked every connection's timer, a
    // zero presence TTL the fanout's liveness loop, `NaN` switched the send limit off and a
    // tiny rate panicked the first refused send; an origin with a path never matched.
    let refused = [
        ("CHAT_WS_PING", "0s", "must be more than zero"),
        ("CHAT_PRESENCE_TTL", "0ms", "must be more than zero"),
        ("CHAT_SEND_RATE", "NaN", "must be 0 (no limit) or from"),
        ("CHAT_SEND_RATE", "-3", "must be 0 (no limit) or from"),
        ("CHAT_SEND_RATE", "1e-300", "must be 0 (no limit) or from"),
        ("CHAT_ALLOWED_ORIGINS", "https://chat.example.com/app", "is not an origin"),
        ("CHAT_ALLOWED_ORIGINS", "https://a.example.com,*", "is not an origin"),
    ];
    for (name, value, reason) in refused {
        let output = check(&["dev"], &[(name, value)]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}={value} was accepted");
        let culprit = value.rsplit(',').next().unwrap_or(value);
        assert!(stderr.contains(reason) && stderr.contains(culprit), "{name}={value}: {stderr}");
    }
    for (name, value) in [
        ("CHAT_DRAIN", "0s"),
        ("CHAT_SEND_RATE", "0"),
        ("CHAT_ALLOWED_ORIGINS", ""),
        ("CHAT_ALLOWED_ORIGINS", "https://Chat.Example.com/, http://localhost:5173"),
    ] {
        let output = check(&["dev"], &[(name, value)]);
        assert!(output.status.success(), "{name}={value:?} was refused: {output:?}");
    }
}

/// The settings of a secured cluster are checked together before anything connects; the
/// password files' contents never reach the output, whatever is wrong.
// Checking a role of the cluster needs its backends built in.
#[cfg(feature = "cluster")]
#[test]
fn security_settings_are_checked_by_name_and_secrets_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let kafka_password = dir.path().join("kafka-password");
    std::fs::write(&kafka_password, "hunter2-kafka\n").unwrap();
    let cql_password = dir.path().join("cql-password");
    std::fs::write(&cql_password, "hunter2-cql").unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let (kafka_password, cql_password, ca) = (
        kafka_password.display().to_string(),
        cql_password.display().to_string(),
        ca.display().to_string(),
    );
    let secured = |extra: &[(&'static str, &str)]| {
        let mut env = vec![
            ("CHAT_KAFKA_BROKERS", "kafka:9093"),
            ("CHAT_CQL_NODES", "scylla:9042"),
            ("CHAT_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("CHAT_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("CHAT_KAFKA_SASL_USERNAME", "chat"),
            ("CHAT_KAFKA_SASL_PASSWORD_FILE", kafka_password.as_str()),
            ("CHAT_CQL_USERNAME", "chat"),
            ("CHAT_CQL_PASSWORD_FILE", cql_password.as_str()),
            ("CHAT_CQL_SSL_CA_FILE", ca.as_str()),
            ("CHAT_CQL_LOCAL_DC", "dc1"),
        ];
        for (name, value) in extra {
            env.retain(|(existing, _)| existing != name);
            if !value.is_empty() {
                env.push((name, value));
            }
        }
        let out = check(&["projector"], &env);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("hunter2"), "a password was printed: {all}");
        (out.status.success(), all)
    };
    let (valid, out) = secured(&[]);
    assert!(valid, "{out}");
    assert!(out.contains(&kafka_password) && out.contains("CHAT_CQL_LOCAL_DC"), "{out}");

    let refusals = [
        (vec![("CHAT_KAFKA_SASL_USERNAME", "")], "CHAT_KAFKA_SASL_USERNAME is required"),
        (vec![("CHAT_KAFKA_SASL_MECHANISM", "GSSAPI")], "CHAT_KAFKA_SASL_MECHANISM"),
        (vec![("CHAT_KAFKA_SASL_PASSWORD_FILE", "/nonexistent")], "cannot read /nonexistent"),
        (vec![("CHAT_KAFKA_SECURITY_PROTOCOL", "ssl")], "CHAT_KAFKA_SASL_MECHANISM is set"),
        (vec![("CHAT_KAFKA_OPTIONS", "acks=1")], "acks cannot be changed"),
        (vec![("CHAT_KAFKA_OPTIONS", "sasl.password=x")], "secrets come from files"),
        (vec![("CHAT_KAFKA_OPTIONS", "no.such.property=1")], "No such configuration property"),
        (vec![("CHAT_CQL_PASSWORD_FILE", "")], "CHAT_CQL_USERNAME needs CHAT_CQL_PASSWORD_FILE"),
        (
            vec![
                ("CHAT_CQL_SSL_CA_FILE", ""),
                ("CHAT_CQL_SSL_CERT_FILE", ca.as_str()),
                ("CHAT_CQL_SSL_KEY_FILE", ca.as_str()),
            ],
            "CHAT_CQL_SSL_CERT_FILE needs CHAT_CQL_SSL_CA_FILE",
        ),
    ];
    for (change, reason) in refusals {
        let (valid, out) = secured(&change);
        assert!(!valid, "{change:?} was taken: {out}");
        assert!(out.contains(reason), "{change:?}: {reason:?} not said: {out}");
    }
    let (tuned, out) =
        secured(&[("CHAT_KAFKA_OPTIONS", "socket.send.buffer.bytes=1048576;linger.ms=10")]);
    assert!(tuned, "harmless properties are taken: {out}");
}

/// The token and cluster secrets can come from files (a Secret mount): read, checked by the
/// setting's name, never printed; the value and the file forms exclude each other.
// Checking a role of the cluster needs its backends built in.
#[cfg(feature = "cluster")]
#[test]
fn token_and_cluster_secrets_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let jwt = dir.path().join("jwt-secret");
    std::fs::write(&jwt, format!("{SECRET}\n")).unwrap();
    let cluster = dir.path().join("cluster-secret");
    std::fs::write(&cluster, "hunter2-cluster-secret-that-is-long-enough").unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "hunter2-too-short").unwrap();
    let (jwt, cluster, empty, short) = (
        jwt.display().to_string(),
        cluster.display().to_string(),
        empty.display().to_string(),
        short.display().to_string(),
    );
    let ingest = |env: &[(&str, &str)]| {
        let mut all = vec![("CHAT_KAFKA_BROKERS", "kafka:9092"), ("CHAT_CQL_NODES", "scylla:9042")];
        all.extend_from_slice(env);
        let out = check(&["ingest"], &all);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains("hunter2") && !text.contains(SECRET),
            "a secret was printed: {text}"
        );
        (out.status.success(), text)
    };
    let (valid, text) =
        ingest(&[("CHAT_JWT_SECRET_FILE", &jwt), ("CHAT_CLUSTER_SECRET_FILE", &cluster)]);
    assert!(valid, "{text}");
    let (valid, text) = ingest(&[("CHAT_JWT_SECRET_FILE", &empty)]);
    assert!(!valid && text.contains("CHAT_JWT_SECRET_FILE") && text.contains("empty"), "{text}");
    let (valid, text) =
        ingest(&[("CHAT_JWT_SECRET_FILE", &jwt), ("CHAT_CLUSTER_SECRET_FILE", "/nonexistent")]);
    assert!(
        !valid && text.contains("CHAT_CLUSTER_SECRET_FILE: cannot read /nonexistent"),
        "{text}"
    );
    let (valid, text) = ingest(&[
        ("CHAT_JWT_SECRET_FILE", &jwt),
        ("CHAT_CLUSTER_SECRET_FILE", &cluster),
        ("CHAT_CLUSTER_SECRET_ACCEPTED_FILE", &short),
    ]);
    assert!(
        !valid && text.contains("CHAT_CLUSTER_SECRET_ACCEPTED_FILE") && text.contains("32 bytes"),
        "a short secret to accept is refused as the cluster secret is: {text}"
    );
    let (valid, text) = ingest(&[
        ("CHAT_JWT_SECRET_FILE", &jwt),
        ("CHAT_CLUSTER_SECRET_FILE", &cluster),
        ("CHAT_CLUSTER_SECRET_ACCEPTED_FILE", &cluster),
    ]);
    assert!(valid, "{text}");
    let (valid, text) = ingest(&[("CHAT_JWT_SECRET_FILE", &jwt), ("CHAT_JWT_SECRET", SECRET)]);
    assert!(!valid && text.contains("cannot be used with"), "{text}");
}

#[cfg(feature = "cluster")]
#[test]
fn a_notifier_with_nothing_to_send_or_an_unusable_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("vapid-key.pem");
    std::fs::write(&key, "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----")
        .unwrap();
    let secret = dir.path().join("webhook-secret");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let cluster = [("CHAT_KAFKA_BROKERS", "kafka:9092"), ("CHAT_CQL_NODES", "scylla:9042")];
    let key = key.display().to_string();
    let secret = secret.display().to_string();
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "nothing to send"),
        (&[("CHAT_VAPID_KEY_FILE", &key)], "CHAT_VAPID_KEY_FILE"),
        (&[("CHAT_WEBHOOK_URL", "https://jobs.example.com/hooks")], "CHAT_WEBHOOK_SECRET_FILE"),
        (&[("CHAT_WEBHOOK_URL", "ftp://jobs.example.com/")], "webhook URL must be https"),
        (&[("CHAT_PUSH_ALLOWED_ENDPOINTS", "http://push.example.com")], "loopback"),
    ];
    for (env, says) in cases {
        let env: Vec<(&str, &str)> = cluster.iter().chain(env).copied().collect();
        let out = check(&["notifier"], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} was accepted");
        assert!(stderr.contains(says), "{env:?}: {stderr}");
    }
    let env: Vec<(&str, &str)> = cluster
        .iter()
        .copied()
        .chain([("CHAT_WEBHOOK_URL", "https://jobs.example.com/hooks")])
        .chain([("CHAT_WEBHOOK_SECRET_FILE", secret.as_str())])
        .collect();
    let out = check(&["notifier"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
