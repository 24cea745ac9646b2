//! The conformance suite against the refsidecar binary of this very build: the test that
//! `cargo mutants` runs (feature `mutants`; scripts/mutants.sh, README "Mutation score"). A
//! mutant of refsidecar's source is compiled into `CARGO_BIN_EXE_refsidecar`, and the suite
//! judges it as it judges any target, over its wire API only. The target file is the reference
//! one with this binary as its command.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let reference = root.join("fixtures/targets/reference.toml");
    let text = match std::fs::read_to_string(&reference) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tck: reading {}: {e}", reference.display());
            return ExitCode::from(2);
        }
    };
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("build =") && !l.starts_with("root ="))
        .map(|l| {
            if l.starts_with("command =") {
                format!("command = {:?}\n", env!("CARGO_BIN_EXE_refsidecar"))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("refsidecar-tck-{}", std::process::id()));
    let file = dir.join("refsidecar-this-build.toml");
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, text)) {
        eprintln!("tck: writing {}: {e}", file.display());
        return ExitCode::from(2);
    }
    let code = suites::conformance::main_for(&file);
    let _ = std::fs::remove_dir_all(&dir);
    code
}
