//! README's flag tables checked against the command line itself, so that neither can
//! drift: every documented flag exists with its variable and default, and every flag with
//! a variable is documented (in the `chat dev` table, or the roles' table for what only
//! the roles take).

use std::collections::BTreeMap;

use clap::CommandFactory;

use crate::cli::Cli;

const README: &str = include_str!("../../README.md");

/// (variable, default if the table states one literally) by flag, from the flag tables
/// between the heading that starts with `heading` and the next heading.
fn table(heading: &str) -> BTreeMap<String, (String, Option<String>)> {
    let section = README
        .split("\n#")
        .find(|part| part.trim_start_matches('#').trim_start().starts_with(heading))
        .unwrap_or_else(|| panic!("README has no section {heading:?}"));
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|line| line.starts_with("| `--")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let flags = quoted(&without_notes(cells[0]));
        let variables = quoted(&without_notes(cells[1]));
        let defaults = literal_defaults(cells[2]);
        assert_eq!(flags.len(), variables.len(), "README row {line:?}");
        for (n, (flag, variable)) in flags.iter().zip(&variables).enumerate() {
            let default =
                defaults.as_ref().filter(|d| d.len() == flags.len()).map(|d| d[n].clone());
            rows.insert(flag.clone(), (variable.clone(), default));
        }
    }
    rows
}

/// The backticked parts of a cell.
fn quoted(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// A cell without its parenthesized notes, such as "(ingest)" or "(forever)".
fn without_notes(cell: &str) -> String {
    let mut kept = String::new();
    let mut depth = 0_u32;
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => kept.push(c),
            _ => {}
        }
    }
    kept
}

/// The defaults a cell states as literal values; `None` when it describes one in
/// words ("a generated dev secret", "(required)", "`<topic>.writers`").
fn literal_defaults(cell: &str) -> Option<Vec<String>> {
    // A note with a value in it ("(projector `:8082`)") is a per-role exception.
    if without_notes(cell).matches('`').count() != cell.matches('`').count() {
        return None;
    }
    let cell = without_notes(cell);
    let values = quoted(&cell);
    let words: String = cell.split('`').step_by(2).collect();
    let described =
        words.chars().any(char::is_alphanumeric) || values.iter().any(|v| v.contains('<'));
    (!described && !values.is_empty()).then_some(values)
}

/// (variable, default) by flag of one subcommand, for the flags that have a variable.
fn flags(subcommand: &str) -> BTreeMap<String, (String, Option<String>)> {
    let command = Cli::command();
    let command = command.find_subcommand(subcommand).unwrap_or_else(|| panic!("{subcommand}"));
    command
        .get_arguments()
        .filter_map(|arg| {
            let long = format!("--{}", arg.get_long()?);
            let variable = arg.get_env()?.to_string_lossy().into_owned();
            let defaults: Vec<String> =
                arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            Some((long, (variable, (!defaults.is_empty()).then(|| defaults.join(",")))))
        })
        .collect()
}

fn agree(
    documented: &BTreeMap<String, (String, Option<String>)>,
    actual: &BTreeMap<String, (String, Option<String>)>,
    flag: &str,
) {
    let (variable, default) = &documented[flag];
    let (real_variable, real_default) = &actual[flag];
    assert_eq!(variable, real_variable, "README names the wrong variable for {flag}");
    if let Some(default) = default {
        assert_eq!(
            Some(default),
            real_default.as_ref(),
            "README states the wrong default for {flag}"
        );
    }
}

#[test]
fn the_dev_table_is_the_dev_command_line() {
    let documented = table("Configuration of `chat dev`");
    let actual = flags("dev");
    for flag in documented.keys() {
        assert!(actual.contains_key(flag), "README documents {flag}, which chat dev lacks");
        agree(&documented, &actual, flag);
    }
    for flag in actual.keys() {
        assert!(documented.contains_key(flag), "chat dev takes {flag}, which README omits");
    }
}

#[test]
fn the_roles_table_and_the_dev_table_cover_every_role() {
    let dev = table("Configuration of `chat dev`");
    let roles = table("Running the roles");
    let subcommands = ["ingest", "fanout", "projector", "notifier", "migrate", "replay"];
    for flag in roles.keys() {
        let taking: Vec<_> =
            subcommands.iter().map(|s| flags(s)).filter(|f| f.contains_key(flag)).collect();
        assert!(!taking.is_empty(), "README documents {flag}, which no role takes");
        for actual in &taking {
            agree(&roles, actual, flag);
        }
    }
    for subcommand in subcommands {
        let actual = flags(subcommand);
        for flag in actual.keys() {
            if roles.contains_key(flag) {
                continue;
            }
            // Shared with chat dev and documented there: the same variable (a role's
            // default may differ, as the projector's `--listen` does).
            let (variable, _) = dev
                .get(flag)
                .unwrap_or_else(|| panic!("chat {subcommand} takes {flag}, which README omits"));
            assert_eq!(variable, &actual[flag].0, "chat {subcommand} {flag}");
        }
    }
}
