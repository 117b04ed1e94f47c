//! The checked-in contract documents equal what the code generates. Run with
//! `CHAT_UPDATE_SCHEMAS=1` to rewrite them after an intended change.

#![allow(clippy::unwrap_used)]

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
