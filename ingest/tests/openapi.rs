//! The OpenAPI document served at `/v1/openapi.json` equals the checked-in one. Run with
//! `CHAT_UPDATE_SCHEMAS=1` to rewrite it after an intended change.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

#[test]
fn checked_in_openapi_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/generated/openapi.json");
    let mut expected = serde_json::to_string_pretty(&ingest::openapi::document()).unwrap();
    expected.push('\n');
    if std::env::var_os("CHAT_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "schemas/generated/openapi.json drifted from the code; run \
         `CHAT_UPDATE_SCHEMAS=1 cargo test -p ingest --test openapi` and review the diff"
    );
}

#[test]
fn every_operation_documents_its_errors_and_schemas_resolve() {
    let document = ingest::openapi::document();
    let text = document.to_string();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling reference to {name}");
    }
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            if operation["security"].is_array() {
                assert!(operation["responses"]["401"].is_object(), "{method} {path} lacks 401");
            }
        }
    }
}
