//! Embeds the kit's data files (`fixtures/components`, `fixtures/schema`, `fixtures/apps`) so
//! that a binary built from this crate runs outside a clone of the repository (see `kit.rs`).
//! Writes `$OUT_DIR/kit_files.rs`: `FILES` (path below `fixtures/`, contents) and `KIT_HASH`, a
//! hash of every path and byte, which names the directory the files are unpacked into.

#![allow(clippy::expect_used)] // a build script reports a broken fixture by panicking

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The folders of `fixtures/` a run reads; `targets/` is this repository's own and stays out.
const FOLDERS: &[&str] = &["components", "schema", "apps"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let fixtures = manifest.join("../../fixtures");
    let mut files = Vec::new();
    for folder in FOLDERS {
        let dir = fixtures.join(folder);
        println!("cargo:rerun-if-changed={}", dir.display());
        collect(&dir, &mut files);
    }
    files.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
    let mut table =
        String::from("/// Every embedded file: its path below `fixtures/`, and its bytes.\n");
    table.push_str("pub(crate) static FILES: &[(&str, &[u8])] = &[\n");
    for path in &files {
        let rel = path
            .strip_prefix(&fixtures)
            .expect("collected below fixtures/")
            .to_str()
            .expect("fixture paths are UTF-8");
        let bytes = std::fs::read(path).expect("a fixture file is readable");
        for b in rel.bytes().chain([0]).chain(bytes) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let abs = path.canonicalize().expect("a fixture file exists");
        writeln!(
            table,
            "    ({rel:?}, include_bytes!({:?})),",
            abs.display().to_string()
        )
        .expect("writing to a String");
    }
    table.push_str("];\n");
    writeln!(
        table,
        "/// A hash of every embedded path and byte.\npub(crate) const KIT_HASH: &str = \"{hash:016x}\";"
    )
    .expect("writing to a String");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("kit_files.rs"), table).expect("OUT_DIR is writable");
}

/// Every regular file below `dir`, skipping what tools leave behind (hidden files, Python
/// caches, node_modules).
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("a readable directory entry");
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "__pycache__" || name == "node_modules" {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().expect("a file type");
        if kind.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, files);
        } else if kind.is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
}
