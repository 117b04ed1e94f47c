//! ARCHITECTURE.md held to the tree: every path its map names exists, every decision under
//! `docs/decisions/` is listed, and the map stays two screens long, so that a move or a
//! new decision cannot leave it behind.

use std::path::{Path, PathBuf};

const MAP: &str = include_str!("../../ARCHITECTURE.md");
/// Two screens of a terminal or an editor.
const MAX_LINES: usize = 120;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The backticked words of `line` that name files or folders.
fn paths(line: &str) -> Vec<&str> {
    let path_like = |word: &&str| {
        word.chars().all(|c| c.is_ascii_alphanumeric() || "_./-*".contains(c))
            && (word.contains('/') || word.ends_with(".md"))
            // `/metrics` and the like are routes, not files.
            && !word.starts_with('/')
    };
    line.split('`').skip(1).step_by(2).filter(path_like).collect()
}

/// Whether `pattern` (a path, perhaps with one `*` in its last part) names something.
fn exists(pattern: &Path) -> bool {
    let name = pattern.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    let Some((before, after)) = name.split_once('*') else { return pattern.exists() };
    let Some(folder) = pattern.parent() else { return false };
    std::fs::read_dir(folder).into_iter().flatten().flatten().any(|entry| {
        let entry = entry.file_name();
        let entry = entry.to_string_lossy();
        entry.starts_with(before) && entry.ends_with(after)
    })
}

#[test]
fn every_path_the_map_names_exists() {
    for line in MAP.lines() {
        // `src/...` is relative to the line's crate, a bare `*.md` to docs/decisions.
        let base = paths(line).first().filter(|first| first.ends_with('/')).copied();
        for path in paths(line) {
            let full = match (path, base) {
                (path, Some(base)) if path.starts_with("src/") => root().join(base).join(path),
                (path, _) if !path.contains('/') => root().join("docs/decisions").join(path),
                (path, _) => root().join(path),
            };
            assert!(exists(&full), "ARCHITECTURE.md names {path}, which does not exist: {line}");
        }
    }
}

#[test]
fn every_decision_is_listed_and_the_map_fits_two_screens() {
    let decisions = std::fs::read_dir(root().join("docs/decisions")).unwrap();
    for decision in decisions.flatten() {
        let name = decision.file_name().to_string_lossy().into_owned();
        assert!(
            MAP.contains(&format!("`{name}`")) || MAP.contains(&format!("decisions/{name}")),
            "docs/decisions/{name} is not listed in ARCHITECTURE.md"
        );
    }
    let lines = MAP.lines().count();
    assert!(lines <= MAX_LINES, "ARCHITECTURE.md is {lines} lines; a map fits {MAX_LINES}");
}
