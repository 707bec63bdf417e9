//! The layout keeps an event type in one place (docs/architecture.md, "Event types"):
//! every input type is named in at most four production files — its schema, its declaration
//! in `event.rs`'s table, the rule that applies it, and its sample builder. Everything else (the
//! codec, the registry, the simulator, the topics) follows from the table.

use std::path::{Path, PathBuf};

use rallypoint_core::event::Event;

const MOST_FILES: usize = 4;

/// Production source: the crates' `src` folders and the current schemas. Test modules (a
/// `tests.rs` file, a `tests` folder, or a trailing `#[cfg(test)] mod tests`) are not
/// production, nor are released schemas (frozen copies of history).
fn production_files() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut dirs = vec![
        root.join("src"),
        root.join("crates/core/src"),
        root.join("schemas"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if path.is_dir() {
                if name != "tests" && name != "released" {
                    dirs.push(path);
                }
                continue;
            }
            let rust = name.ends_with(".rs");
            if !(rust || name.ends_with(".avsc")) || name == "tests.rs" {
                continue;
            }
            let mut text = std::fs::read_to_string(&path).unwrap();
            if rust {
                if let Some(at) = text.find("\n#[cfg(test)]\nmod tests") {
                    text.truncate(at);
                }
            }
            files.push((path, text));
        }
    }
    assert!(files.len() > 20, "the source tree was not found");
    files
}

/// Whether `text` names the event type `name`: as a word, but not as the variant of another
/// enum that happens to share it (`CancelReason::OfferWithdrawn` is a reason, not the event).
fn names(text: &str, name: &str) -> bool {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    text.match_indices(name).any(|(at, _)| {
        let end = at + name.len();
        let before = &text[..at];
        let whole = (at == 0 || !word(bytes[at - 1])) && (end == bytes.len() || !word(bytes[end]));
        let other_enum = before.ends_with("::") && !before.ends_with("Event::");
        let other_variant = in_other_enum(before);
        whole && !other_enum && !other_variant
    })
}

/// Whether the text before a match ends inside the body of an `enum` declaration (a variant
/// of that enum is declared there, not the event type named).
fn in_other_enum(before: &str) -> bool {
    match before.rfind("enum ") {
        Some(at) => !before[at..].contains("\n}"),
        None => false,
    }
}

#[test]
fn each_event_type_is_named_in_at_most_four_production_files() {
    let files = production_files();
    let mut report = Vec::new();
    for t in Event::TYPES {
        let hits: Vec<String> = files
            .iter()
            .filter(|(_, text)| names(text, t.name))
            .map(|(path, _)| path.display().to_string())
            .collect();
        // The declaration itself is one of them: a type the scan misses would pass vacuously.
        assert!(
            hits.iter().any(|p| p.ends_with("event.rs")),
            "{} not found in its declaration: {hits:?}",
            t.name
        );
        if hits.len() > MOST_FILES {
            report.push(format!("{} in {} files: {hits:#?}", t.name, hits.len()));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn the_scan_tells_a_type_from_a_variant_of_the_same_name() {
    assert!(names("Event::OfferWithdrawn(w) =>", "OfferWithdrawn"));
    assert!(names("/// see `OfferWithdrawn`", "OfferWithdrawn"));
    assert!(!names("CancelReason::OfferWithdrawn", "OfferWithdrawn"));
    assert!(!names(
        "pub enum CancelReason {\n    OfferWithdrawn,\n}",
        "OfferWithdrawn"
    ));
    assert!(!names("OfferWithdrawnAt", "OfferWithdrawn"));
}
