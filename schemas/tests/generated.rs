//! The checked-in contract documents equal what the code generates. Run with
//! `CHAT_UPDATE_SCHEMAS=1` to rewrite them after an intended change.
//!
//! The checked-in JSON Schemas are also the last published ones: a change that breaks
//! them (see `schemas::compatibility`) fails here, and is not written by the update
//! either. New meaning gets a new version or type, which is a new document.

#![allow(clippy::unwrap_used)]

use std::ops::Not;
use std::path::PathBuf;

use schemas::generate::{Document, asyncapi, json_schemas};

fn generated_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("generated")
}

#[test]
fn checked_in_documents_match_the_code() {
    let update = std::env::var_os("CHAT_UPDATE_SCHEMAS").is_some();
    let mut documents: Vec<Document> = json_schemas();
    documents.push(asyncapi());
    let mut stale = Vec::new();
    for document in &documents {
        let path = generated_dir().join(&document.path);
        let expected = document.pretty();
        if update && !published_compatibly(document).is_empty() {
            continue;
        }
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &expected).unwrap();
            continue;
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        if actual != expected {
            stale.push(document.path.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "generated documents drifted from the code: {stale:?}; \
         run `CHAT_UPDATE_SCHEMAS=1 cargo test -p schemas --test generated` and review the diff"
    );
}

#[test]
fn every_event_type_has_a_schema() {
    let documents = json_schemas();
    for event_type in schemas::ChatEvent::TYPES {
        let path = format!("events/{event_type}.json");
        assert!(documents.iter().any(|document| document.path == path), "{path} missing");
    }
}

/// Every published JSON Schema is still honoured by what the code generates now. AsyncAPI
/// and OpenAPI embed the same types, so checking the JSON Schemas covers them.
#[test]
fn generated_schemas_keep_what_was_published() {
    let mut broken = Vec::new();
    for document in json_schemas() {
        for problem in published_compatibly(&document) {
            broken.push(format!("{}: {problem}", document.path));
        }
    }
    assert!(
        broken.is_empty(),
        "the code breaks published schemas (give new meaning a new version or type, \
         which is a new document):\n{}",
        broken.join("\n")
    );
}

/// What `document` breaks of its checked-in (published) version; nothing for a document
/// not published yet.
fn published_compatibly(document: &Document) -> Vec<String> {
    if !document.path.ends_with(".json") || document.path.contains('/').not() {
        return Vec::new();
    }
    let path = generated_dir().join(&document.path);
    let Ok(text) = std::fs::read_to_string(&path) else { return Vec::new() };
    match serde_json::from_str(&text) {
        Ok(published) => schemas::compatibility::incompatibilities(&published, &document.content),
        Err(error) => vec![format!("the published file is not JSON: {error}")],
    }
}
