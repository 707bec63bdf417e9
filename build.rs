//! Lists the schemas of every release (`schemas/released/v<N>/`) for `codec::schemas`, so
//! that a released schema is a file in such a folder and nothing more: no type is named again
//! in the code. Each `<snake_case>.avsc` but `common.avsc` is the record `<CamelCase>`; each
//! folder's `common.avsc` holds the shared types of that release.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const RELEASED: &str = "schemas/released";

fn avsc_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable entry").path())
        .filter(|path| path.extension().is_some_and(|x| x == "avsc"))
        .collect();
    files.sort();
    files
}

fn camel_case(stem: &str) -> String {
    stem.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

fn main() {
    println!("cargo:rerun-if-changed={RELEASED}");
    // Read at run time, and named relative to the crate in the generated code: a build folder
    // shared by checkouts in different places (CI's clones and a developer's) never points one
    // checkout at another's files.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let released = Path::new(&root).join(RELEASED);
    let mut versions: Vec<(u32, String)> = std::fs::read_dir(&released)
        .unwrap_or_else(|e| panic!("{}: {e}", released.display()))
        .map(|entry| entry.expect("a readable entry").file_name())
        .filter_map(|name| {
            let name = name.to_str()?.to_owned();
            Some((name.strip_prefix('v')?.parse().ok()?, name))
        })
        .collect();
    versions.sort();
    let include = |version: &str, stem: &str| {
        let file = format!("/{RELEASED}/{version}/{stem}.avsc");
        format!("include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {file:?}))")
    };
    let mut out = String::from("&[\n");
    for (_, version) in &versions {
        println!("cargo:rerun-if-changed={RELEASED}/{version}");
        let _ = writeln!(out, "    ({version:?}, {}, &[", include(version, "common"));
        for path in avsc_files(&released.join(version)) {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("a UTF-8 name");
            if stem != "common" {
                let name = camel_case(stem);
                let _ = writeln!(out, "        ({name:?}, {}),", include(version, stem));
            }
        }
        out.push_str("    ]),\n");
    }
    out.push(']');
    let target =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("released.rs");
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
}
