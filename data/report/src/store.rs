//! The run directory: the only module of this crate that does IO.
//!
//! Layout under a base directory (such as `reports/<suite>`):
//!
//! ```text
//! <run-id>/results.json   json::render
//! <run-id>/junit.xml      junit::render
//! <run-id>/summary.md     markdown::render
//! <run-id>/report.html    html::render
//! <run-id>/histories/     one <name>.jsonl per trial history
//! <run-id>/logs/          created empty; process logs are written by the runner
//! latest/                 a copy of the newest run directory
//! ```
//!
//! `latest` is a real directory, not a symlink, so it works on every
//! platform and survives archiving. It is replaced almost atomically: the
//! copy is built in `latest.tmp`, the old `latest` is moved to `latest.old`,
//! `latest.tmp` is renamed to `latest`, and `latest.old` is removed.
//! A reader can at worst find `latest` missing for an instant, never half
//! written.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use crate::{RunReport, html, json, junit, markdown};

const LATEST: &str = "latest";
const LATEST_TMP: &str = "latest.tmp";
const LATEST_OLD: &str = "latest.old";

/// Writes the run directory `base_dir/<run_id>` with every report format
/// and the given histories (`(file name, JSONL)`; `.jsonl` is appended when
/// missing), creates its `logs/`, then refreshes `base_dir/latest`.
/// Returns the run directory.
///
/// Fails with [`io::ErrorKind::InvalidInput`] when the run id or a history
/// name is not a single plain path component, or the run id is one of the
/// reserved `latest` names.
pub fn write_run(
    base_dir: &Path,
    report: &RunReport,
    histories: &[(String, String)],
) -> io::Result<PathBuf> {
    plain_component(&report.run_id, "run id")?;
    if [LATEST, LATEST_TMP, LATEST_OLD].contains(&report.run_id.as_str()) {
        return Err(invalid(format!("run id {:?} is reserved", report.run_id)));
    }
    let mut history_files = Vec::with_capacity(histories.len());
    for (name, jsonl) in histories {
        plain_component(name, "history name")?;
        let file = if name.ends_with(".jsonl") {
            name.clone()
        } else {
            format!("{name}.jsonl")
        };
        history_files.push((file, jsonl));
    }

    let run_dir = base_dir.join(&report.run_id);
    fs::create_dir_all(run_dir.join("histories"))?;
    fs::create_dir_all(run_dir.join("logs"))?;
    fs::write(run_dir.join("results.json"), json::render(report))?;
    fs::write(run_dir.join("junit.xml"), junit::render(report))?;
    fs::write(run_dir.join("summary.md"), markdown::render(report))?;
    fs::write(run_dir.join("report.html"), html::render(report))?;
    for (file, jsonl) in history_files {
        fs::write(run_dir.join("histories").join(file), jsonl)?;
    }

    refresh_latest(base_dir, &run_dir)?;
    Ok(run_dir)
}

/// A portable history file name for a check id: characters other than
/// ASCII letters, digits, `.`, `-` and `_` become `_` (so `::` separators
/// survive on every file system), and `.jsonl` is appended.
#[must_use]
pub fn history_file_name(check_id: &str) -> String {
    let stem: String = check_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = stem.trim_start_matches('.');
    if stem.is_empty() {
        "history.jsonl".to_owned()
    } else {
        format!("{stem}.jsonl")
    }
}

/// Replaces `base_dir/latest` with a copy of `run_dir`, as described in the module docs.
/// Other run directories (such as `pubsub-tck bench`'s) use it for their own `latest`.
pub fn refresh_latest(base_dir: &Path, run_dir: &Path) -> io::Result<()> {
    let latest = base_dir.join(LATEST);
    let tmp = base_dir.join(LATEST_TMP);
    let old = base_dir.join(LATEST_OLD);
    // Leftovers from an interrupted refresh are garbage by now.
    remove_any(&tmp)?;
    remove_any(&old)?;
    copy_dir(run_dir, &tmp)?;
    if fs::symlink_metadata(&latest).is_ok() {
        fs::rename(&latest, &old)?;
    }
    fs::rename(&tmp, &latest)?;
    remove_any(&old)
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Removes a file, symlink or directory tree; absent is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

fn plain_component(name: &str, what: &str) -> io::Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || Path::new(name).is_absolute();
    if bad {
        Err(invalid(format!("{what} {name:?} is not a plain file name")))
    } else {
        Ok(())
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::test_support::sample;

    /// A fresh, empty directory under the system temp dir.
    fn scratch() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "harness-report-store-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_run_dir_and_refreshes_latest() {
        let base = scratch();
        let first = sample();
        let histories = vec![(history_file_name("delivery::lost"), "{}\n".to_owned())];
        let dir = write_run(&base, &first, &histories).unwrap();
        assert_eq!(dir, base.join("run-1"));
        assert_eq!(
            listing(&dir),
            [
                "histories",
                "junit.xml",
                "logs",
                "report.html",
                "results.json",
                "summary.md"
            ]
        );
        assert_eq!(listing(&dir.join("histories")), ["delivery__lost.jsonl"]);

        let mut second = sample();
        second.run_id = "run-2".into();
        write_run(&base, &second, &[("plain".into(), String::new())]).unwrap();
        assert_eq!(listing(&base), ["latest", "run-1", "run-2"]);
        let latest = fs::read_to_string(base.join("latest/results.json")).unwrap();
        assert_eq!(json::parse(&latest).unwrap().run_id, "run-2");
        assert_eq!(listing(&base.join("latest/histories")), ["plain.jsonl"]);
        assert!(base.join("latest/logs").is_dir());
        assert!(
            !fs::symlink_metadata(base.join("latest"))
                .unwrap()
                .file_type()
                .is_symlink()
        );

        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn rejects_unsafe_names() {
        let base = scratch();
        for id in ["", "..", "a/b", "latest"] {
            let mut report = sample();
            report.run_id = id.into();
            let err = write_run(&base, &report, &[]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{id:?}");
        }
        let err = write_run(&base, &sample(), &[("../x".into(), String::new())]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(listing(&base).is_empty());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn history_names_are_portable() {
        assert_eq!(history_file_name("a::b c/d"), "a__b_c_d.jsonl");
        assert_eq!(history_file_name(".."), "history.jsonl");
    }
}
