//! `chat config check <role> [flags]`: validates a role's configuration the way the role
//! would before connecting anywhere (flags, `CHAT_*` and `OTEL_*` variables, key files,
//! timing rules), then prints the effective configuration, each value with where it came
//! from, secrets redacted. Nothing is bound or written; with `--connect`, each backend is
//! reached with the given settings and the answer (or the refusal) printed.

use std::io::Write;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command, CommandFactory};

use crate::cli::{CheckedRole, Cli};
use crate::{cluster, jwt, migrate, telemetry};

/// Validates `role`; `matches` are the role's own (under `config check`).
pub(crate) fn run(role: &CheckedRole, connect: bool, matches: &ArgMatches) -> anyhow::Result<()> {
    let name = match role {
        CheckedRole::Dev(args) => {
            // Without key flags `chat dev` makes a secret on first start: nothing to read.
            if args.jwt.configured() {
                jwt::verifier(&args.jwt, None)?;
            }
            args.write.timing().check(args.write.append_timeout)?;
            "dev"
        }
        CheckedRole::Ingest(args) => {
            cluster::check_role(args, "ingest")?;
            "ingest"
        }
        CheckedRole::Fanout(args) => {
            cluster::check_role(args, "fanout")?;
            "fanout"
        }
        CheckedRole::Projector(args) => {
            cluster::check_cluster(&args.cluster)?;
            "projector"
        }
        CheckedRole::Notifier(args) => {
            cluster::check_notifier(args)?;
            "notifier"
        }
        CheckedRole::Migrate(args) => {
            cluster::check_cluster(&args.cluster)?;
            migrate::parse_replication(&args.cql_replication)?;
            "migrate"
        }
    };
    telemetry::traces::check()?;
    let command = Cli::command();
    let definition = command
        .find_subcommand("config")
        .and_then(|config| config.find_subcommand("check"))
        .and_then(|check| check.find_subcommand(name));
    let mut out = std::io::stdout().lock();
    writeln!(out, "chat {name}: the configuration is valid")?;
    if let Some(definition) = definition {
        print_effective(&mut out, definition, matches)?;
    }
    out.flush()?;
    drop(out);
    if !connect {
        return Ok(());
    }
    let cluster = match role {
        CheckedRole::Dev(_) => {
            println_out("connect: chat dev keeps its log and store in its data directory")?;
            return Ok(());
        }
        CheckedRole::Ingest(args) | CheckedRole::Fanout(args) => &args.cluster,
        CheckedRole::Projector(args) => &args.cluster,
        CheckedRole::Notifier(args) => &args.cluster,
        CheckedRole::Migrate(args) => &args.cluster,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut failed = 0;
    for (name, address, answer) in runtime.block_on(cluster::reach_backends(cluster))? {
        match answer {
            Ok(report) => println_out(&format!("connect: {name} at {address}: ok: {report}"))?,
            Err(error) => {
                failed += 1;
                println_out(&format!("connect: {name} at {address}: FAILED: {error}"))?;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of 2 backends could not be reached with these settings");
    }
    Ok(())
}

fn println_out(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// One line per setting: flag, variable, value (secrets redacted), and its source.
fn print_effective(
    out: &mut impl Write,
    definition: &Command,
    matches: &ArgMatches,
) -> std::io::Result<()> {
    for arg in definition.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        let variable =
            arg.get_env().map(|env| env.to_string_lossy().into_owned()).unwrap_or_default();
        let value = matches.get_raw(id).map(|values| {
            values.map(|value| value.to_string_lossy().into_owned()).collect::<Vec<_>>().join(",")
        });
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let shown = match value {
            Some(_) if arg.is_hide_env_values_set() => "<redacted>".to_owned(),
            Some(value) => value,
            None => String::new(),
        };
        writeln!(out, "  --{long:<28} {variable:<32} {shown:<28} ({source})")?;
    }
    for (name, value) in std::env::vars().filter(|(name, _)| name.starts_with("OTEL_")) {
        let shown = if name.contains("HEADERS") { "<redacted>".to_owned() } else { value };
        writeln!(out, "  {:<30} {name:<32} {shown:<28} (environment)", "")?;
    }
    Ok(())
}
