//! Lists the schemas of the last release (`schemas/released/v1`) for `codec::schemas`, so
//! that a released schema is a file in that folder and nothing more: no type is named again
//! in the code. Each `<snake_case>.avsc` but `common.avsc` is the record `<CamelCase>`.

use std::fmt::Write as _;
use std::path::Path;

const RELEASED: &str = "schemas/released/v1";

fn main() {
    println!("cargo:rerun-if-changed={RELEASED}");
    // Read at run time, and named relative to the crate in the generated code: a build folder
    // shared by checkouts in different places (CI's clones and a developer's) never points one
    // checkout at another's files.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&root).join(RELEASED);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable entry").path())
        .filter(|path| path.extension().is_some_and(|x| x == "avsc"))
        .filter(|path| path.file_stem().is_some_and(|s| s != "common"))
        .collect();
    files.sort();
    let mut out = String::from("&[\n");
    for path in files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 name");
        let name: String = stem
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect();
        let file = format!("/{RELEASED}/{stem}.avsc");
        let _ = writeln!(
            out,
            "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {file:?}))),"
        );
    }
    out.push(']');
    let target =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("released.rs");
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
}
