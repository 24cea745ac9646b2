//! The kit's data: component templates, the CloudEvents schema and the tutorial apps, read from
//! `fixtures/` of the repository a run starts in, or else from the copy built into this crate.
//!
//! A binary installed with `cargo install` runs from any directory: when no ancestor of the
//! current directory is a clone of this repository, the embedded files are unpacked once into
//! `<cache>/kit-<hash>/fixtures/` (the cache is `PUBSUB_TCK_CACHE`, else
//! `$XDG_CACHE_HOME/pubsub-tck`, else `~/.cache/pubsub-tck`, as for the scripts), and that
//! directory is the run's kit root. The hash covers every path and byte, so a new kit unpacks
//! beside an old one and a half-written copy is never used (a marker file is written last and
//! the directory renamed into place).

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/kit_files.rs"));

/// A file every kit root has: a directory holding it below `fixtures/` is one.
const MARKER: &str = "fixtures/schema/cloudevents-1.0.2.schema.json";

/// Written last into an unpacked kit.
const COMPLETE: &str = ".complete";

/// The kit root (the directory holding `fixtures/`) for a run started in `start`: the nearest
/// ancestor holding the kit's files, else the embedded copy, unpacked below the cache directory.
pub fn find(start: &Path) -> std::io::Result<PathBuf> {
    match start.ancestors().find(|d| d.join(MARKER).is_file()) {
        Some(dir) => Ok(dir.to_owned()),
        None => unpack(&cache_dir()?),
    }
}

/// The cache directory shared with the scripts.
fn cache_dir() -> std::io::Result<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("PUBSUB_TCK_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("pubsub-tck")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("pubsub-tck")))
        .ok_or_else(|| {
            std::io::Error::other(
                "no cache directory for the kit's files: set PUBSUB_TCK_CACHE or HOME",
            )
        })
}

/// Unpacks the embedded files into `<cache>/kit-<hash>/` unless a complete copy is there, and
/// returns that directory. Concurrent runs each write a private copy and rename it into place;
/// the loser of the race uses the winner's.
pub fn unpack(cache: &Path) -> std::io::Result<PathBuf> {
    let dir = cache.join(format!("kit-{KIT_HASH}"));
    if dir.join(COMPLETE).is_file() {
        return Ok(dir);
    }
    let named = |what: &str, path: &Path, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    std::fs::create_dir_all(cache).map_err(|e| named("creating", cache, e))?;
    let staging = cache.join(format!(".kit-{KIT_HASH}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    for (rel, bytes) in FILES {
        let path = staging.join("fixtures").join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| named("creating", parent, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| named("writing", &path, e))?;
    }
    std::fs::write(staging.join(COMPLETE), KIT_HASH)
        .map_err(|e| named("writing", &staging.join(COMPLETE), e))?;
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        Err(_) if dir.join(COMPLETE).is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => {
            // An incomplete leftover (a run killed before its rename): replace it.
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&staging, &dir).map_err(|_| named("moving into place", &dir, e))?;
            Ok(dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_copy_matches_the_repository() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        assert!(FILES.iter().any(|(p, _)| *p == "components/redis.yaml"));
        assert!(FILES.iter().any(|(p, _)| p.starts_with("apps/python/")));
        for (rel, bytes) in FILES {
            let on_disk = std::fs::read(root.join("fixtures").join(rel)).unwrap();
            assert_eq!(&on_disk[..], *bytes, "{rel}");
        }
    }

    #[test]
    fn unpacks_once_into_a_complete_kit_root() {
        let cache = tempfile_dir("unpack");
        let dir = unpack(&cache).unwrap();
        assert!(dir.join(MARKER).is_file());
        assert!(dir.join("fixtures/components/kafka.yaml").is_file());
        // A second call reuses it; a run started there finds it as a kit root.
        std::fs::write(dir.join("fixtures/components/extra"), "x").unwrap();
        assert_eq!(unpack(&cache).unwrap(), dir);
        assert!(dir.join("fixtures/components/extra").is_file());
        assert_eq!(find(&dir.join("fixtures/apps")).unwrap(), dir);
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn an_incomplete_copy_is_replaced() {
        let cache = tempfile_dir("incomplete");
        let dir = cache.join(format!("kit-{KIT_HASH}"));
        std::fs::create_dir_all(dir.join("fixtures")).unwrap();
        assert_eq!(unpack(&cache).unwrap(), dir);
        assert!(dir.join(COMPLETE).is_file() && dir.join(MARKER).is_file());
        let _ = std::fs::remove_dir_all(&cache);
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pubsub-tck-kit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
