//! The Kubernetes manifests checked against the command line, as README's tables are: every
//! variable a cluster role or `chat migrate` takes is set in `infra/k8s/base/chat.env`, set
//! in a Deployment or Job of the base, or listed in chat.env's "not set on purpose" comment
//! with its reason; and nothing the manifests set is a variable no role reads (a typo there
//! is a setting silently left at its default).

use std::collections::BTreeSet;

use clap::CommandFactory;

use crate::cli::Cli;

const CHAT_ENV: &str = include_str!("../../infra/k8s/base/chat.env");
const DEPLOYMENTS: [(&str, &str); 5] = [
    ("ingest.yaml", include_str!("../../infra/k8s/base/ingest.yaml")),
    ("fanout.yaml", include_str!("../../infra/k8s/base/fanout.yaml")),
    ("projector.yaml", include_str!("../../infra/k8s/base/projector.yaml")),
    ("notifier.yaml", include_str!("../../infra/k8s/base/notifier.yaml")),
    ("migrate.yaml", include_str!("../../infra/k8s/base/migrate.yaml")),
];
const CLUSTER_COMMANDS: [&str; 6] =
    ["ingest", "fanout", "projector", "notifier", "migrate", "replay"];

/// Every `CHAT_*` variable the cluster commands take.
fn taken() -> BTreeSet<String> {
    let command = Cli::command();
    CLUSTER_COMMANDS
        .iter()
        .filter_map(|name| command.find_subcommand(name))
        .flat_map(|subcommand| subcommand.get_arguments())
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect()
}

/// The `CHAT_*` names chat.env sets (`NAME=value`).
fn set_in_chat_env() -> BTreeSet<String> {
    CHAT_ENV
        .lines()
        .filter(|line| line.starts_with("CHAT_"))
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.trim().to_owned()))
        .collect()
}

/// The names chat.env lists as not set on purpose (`#   CHAT_NAME   reason`).
fn left_out_on_purpose() -> BTreeSet<String> {
    CHAT_ENV
        .lines()
        .filter_map(|line| line.strip_prefix("#   CHAT_"))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|name| format!("CHAT_{name}"))
        .collect()
}

/// The `CHAT_*` names a Deployment or Job sets in its container's `env`.
fn set_in_deployments() -> BTreeSet<String> {
    DEPLOYMENTS
        .iter()
        .flat_map(|(_, text)| text.lines())
        .filter_map(|line| line.split("name: CHAT_").nth(1))
        .map(|rest| {
            let end = rest.find(|c: char| !(c.is_ascii_uppercase() || c == '_'));
            format!("CHAT_{}", &rest[..end.unwrap_or(rest.len())])
        })
        .collect()
}

#[test]
fn every_setting_of_the_cluster_roles_is_in_the_manifests_or_left_out_with_a_reason() {
    let (set, left_out, deployed) =
        (set_in_chat_env(), left_out_on_purpose(), set_in_deployments());
    for variable in taken() {
        assert!(
            set.contains(&variable) || left_out.contains(&variable) || deployed.contains(&variable),
            "the roles take {variable}, which infra/k8s/base neither sets nor lists as left out"
        );
    }
}

#[test]
fn the_manifests_set_nothing_the_roles_do_not_read() {
    let taken = taken();
    let every =
        set_in_chat_env().into_iter().chain(set_in_deployments()).chain(left_out_on_purpose());
    for variable in every {
        // `chat dev` and `chat token` only: listed so that an operator knows they exist.
        let dev_only = ["CHAT_DATA_DIR", "CHAT_NO_DEMO", "CHAT_SERVE_DEV_TOKENS"];
        assert!(
            taken.contains(&variable) || dev_only.contains(&variable.as_str()),
            "infra/k8s/base names {variable}, which no cluster role reads"
        );
    }
    let both: Vec<_> = set_in_chat_env().intersection(&left_out_on_purpose()).cloned().collect();
    assert!(both.is_empty(), "chat.env both sets and leaves out {both:?}");
}
