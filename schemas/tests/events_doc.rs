//! docs/EVENTS.md, the page data teams read, names exactly the event types the code
//! publishes, and each type's row names every member of its `data`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use schemas::generate::json_schemas;
use serde_json::Value;

const PAGE: &str = include_str!("../../docs/EVENTS.md");

/// The data cell of each row of the page's event-type table, by type.
fn documented() -> BTreeMap<String, String> {
    let section = PAGE
        .split("\n## ")
        .find(|part| part.starts_with("Event types"))
        .expect("docs/EVENTS.md has a section \"Event types\"");
    section
        .lines()
        .filter(|line| line.starts_with("| `chat."))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].trim_matches('`').to_owned(), cells[1].to_owned())
        })
        .collect()
}

/// The members of each published event's `data`, by type.
fn published() -> BTreeMap<String, BTreeSet<String>> {
    json_schemas()
        .into_iter()
        .filter(|document| document.path.starts_with("events/chat."))
        .map(|document| {
            let schema = document.content;
            let title = schema["title"].as_str().unwrap().to_owned();
            let data = &schema["properties"]["data"];
            let definition = data["$ref"]
                .as_str()
                .and_then(|reference| schema.pointer(reference.trim_start_matches('#')).cloned());
            let members = definition
                .as_ref()
                .unwrap_or(data)
                .get("properties")
                .and_then(Value::as_object)
                .map(|properties| properties.keys().cloned().collect())
                .unwrap_or_default();
            (title, members)
        })
        .collect()
}

#[test]
fn the_page_lists_every_published_event_type_and_no_other() {
    let documented: BTreeSet<String> = documented().into_keys().collect();
    let published: BTreeSet<String> = published().into_keys().collect();
    assert!(!published.is_empty(), "no event schemas were generated");
    assert_eq!(documented, published, "docs/EVENTS.md's event types against the schemas");
}

#[test]
fn each_row_names_every_member_of_its_data() {
    let documented = documented();
    for (event_type, members) in published() {
        let cell = documented
            .get(&event_type)
            .unwrap_or_else(|| panic!("docs/EVENTS.md has no row for {event_type}"));
        let named: BTreeSet<&str> = cell.split('`').skip(1).step_by(2).collect();
        let missing: Vec<&String> =
            members.iter().filter(|member| !named.contains(member.as_str())).collect();
        assert!(missing.is_empty(), "docs/EVENTS.md's {event_type} row lacks {missing:?}");
    }
}
