//! `pubsub-tck init`: scaffolds a target file (and an empty expectations file) in the current
//! directory for the sidecar command the user names, with a comment on every field and
//! placeholder. The command line is daprd's flags, which any daprd-compatible sidecar takes.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// `pubsub-tck init` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// The target's name: the file is `NAME.toml`, its expectations `NAME.expect.toml`.
    #[arg(long)]
    pub(crate) name: String,
    /// The sidecar's program: a path (made absolute, so the file works from anywhere) or a
    /// bare name found on PATH.
    #[arg(long)]
    pub(crate) command: String,
    /// The command line to write: `daprd` (daprd's flags, its internal gRPC and metrics
    /// listeners on harness ports too) or `minimal` (the six flags every daprd-compatible
    /// sidecar takes).
    #[arg(long, value_enum, default_value_t = Flags::Daprd)]
    pub(crate) flags: Flags,
    /// Overwrite files that exist.
    #[arg(long)]
    pub(crate) force: bool,
}

/// Which command line `init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Flags {
    Daprd,
    Minimal,
}

/// Writes the two files into `dir`; returns their paths.
pub(crate) fn init(args: &InitArgs, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let name = args.name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        bail!("--name {name:?}: use letters, digits, `-`, `_` and `.` (it names the files)");
    }
    let command = if args.command.contains('/') {
        let p = Path::new(&args.command);
        let abs = if p.is_absolute() {
            p.to_owned()
        } else {
            dir.join(p)
        };
        abs.to_str()
            .with_context(|| format!("--command {:?} is not valid UTF-8", args.command))?
            .to_owned()
    } else {
        args.command.clone()
    };
    let target = dir.join(format!("{name}.toml"));
    let expect = dir.join(format!("{name}.expect.toml"));
    for f in [&target, &expect] {
        if f.exists() && !args.force {
            bail!("{} exists (use --force to overwrite it)", f.display());
        }
    }
    std::fs::write(&target, target_file(name, &command, args.flags))
        .with_context(|| format!("writing {}", target.display()))?;
    std::fs::write(&expect, EXPECTATIONS)
        .with_context(|| format!("writing {}", expect.display()))?;
    Ok((target, expect))
}

/// The text of `NAME.toml`.
fn target_file(name: &str, command: &str, flags: Flags) -> String {
    let args = match flags {
        Flags::Daprd => {
            r#"args = ["--app-id", "{app_id}", "--app-port", "{app_port}", "--app-protocol", "{app_protocol}",
        "--dapr-http-port", "{http_port}", "--dapr-grpc-port", "{grpc_port}",
        "--dapr-internal-grpc-port", "{internal_grpc_port}", "--dapr-internal-grpc-listen-address", "127.0.0.1",
        "--metrics-port", "{metrics_port}", "--metrics-listen-address", "127.0.0.1",
        "--dapr-listen-addresses", "127.0.0.1",
        "--resources-path", "{resources_dir}"]
# daprd standalone resolves app ids with mDNS, which multicasts on every interface: give it a
# Configuration with another name resolver (`"--config", "path/to/config.yaml"`; this
# repository's fixtures/targets/daprd/config.yaml uses SQLite in memory)."#
        }
        Flags::Minimal => {
            r#"args = ["--app-id", "{app_id}", "--app-port", "{app_port}", "--app-protocol", "{app_protocol}",
        "--dapr-http-port", "{http_port}", "--dapr-grpc-port", "{grpc_port}",
        "--resources-path", "{resources_dir}"]"#
        }
    };
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    format!(
        r#"# A pubsub-tck target file: how to start the sidecar under test. Run the checks with
#   pubsub-tck run --target {name}.toml
# (`--broker in-memory,redis,kafka` for more brokers; `pubsub-tck list` for the checks).

# The target's name, shown in every report.
name = {name_q}

# The program that starts the sidecar: absolute, a bare name found on PATH, or a path relative
# to `root`. `root` (optional) is relative to this file's folder, which is its default; the
# sidecar runs in it, and so does `build` below.
# root = "."
command = {command_q}

# Its arguments (daprd's flags). The harness fills in the placeholders at every launch:
#   {{app_id}}              the app id of the trial (unique per trial)
#   {{app_port}}            the port of the harness's test app (the sidecar delivers there)
#   {{app_protocol}}        `http`, or `grpc` for checks with a gRPC app (capability app.grpc)
#   {{http_port}}           the sidecar's HTTP API port (clients publish there)
#   {{grpc_port}}           the sidecar's gRPC API port
#   {{internal_grpc_port}}  daprd's internal gRPC port (service invocation between sidecars)
#   {{metrics_port}}        a metrics port
#   {{wrapper_port}}        one more port, for a wrapper in front of the sidecar's API
#   {{resources_dir}}       the directory of component, subscription and resiliency YAML
#   {{config_file}}         a daprd Configuration YAML, only where a check supplies one (a
#                          launch that uses it without one is an error, so it is not used below)
# Every port is a free loopback port; nothing may listen beyond loopback.
{args}

# Extra environment variables for the sidecar (placeholders work here too).
env = {{ }}

# The path polled until it answers 2xx before a trial starts.
ready = "/v1.0/healthz/outbound"

# What the sidecar supports beyond publishing over HTTP with the in-memory broker; checks that
# need anything not listed are skipped with that reason. Known names:
#   bulk          bulk publish (/v1.0-alpha1/publish/bulk)
#   api.grpc      the gRPC API (PublishEvent, BulkPublishEvent, GetMetadata, ...)
#   app.grpc      delivery to an app that speaks gRPC (AppCallback)
#   streaming     streaming subscriptions (SubscribeTopicEventsAlpha1)
#   pubsub.redis  the `pubsub.redis` component (Redis Streams)
#   pubsub.kafka  the `pubsub.kafka` component
capabilities = []

# Optional: a command run once before the checks (`pubsub-tck run` runs it; `--no-build` skips).
# build = ["make", "sidecar"]

# Checks this sidecar is known to fail, each with its reason (see the file).
expectations = "{name}.expect.toml"

# What the sidecar promises on each broker, with the component configured as in the kit's
# component templates (`pubsub-tck run` writes them); a check that needs a promise the sidecar
# does not make on a broker is skipped there. These are what daprd's components make (a broker
# left out makes them too). Known names:
{known}
[promises]
{promises}"#,
        name_q = quote(name),
        args = args,
        command_q = quote(command),
        known = known_promises(),
        promises = default_promises(),
    )
}

/// One comment line per promise: its name and what it means.
fn known_promises() -> String {
    harness::Promise::ALL
        .iter()
        .map(|p| format!("#   {:<27} {}\n", p.name(), p.describe()))
        .collect()
}

/// The `[promises]` entries: every broker's defaults.
fn default_promises() -> String {
    harness::Broker::ALL
        .iter()
        .map(|&b| {
            let names: Vec<String> = harness::promise::defaults(b)
                .iter()
                .map(|p| format!("\"{p}\""))
                .collect();
            format!("{} = [{}]\n", b.name(), names.join(", "))
        })
        .collect()
}

/// The text of `NAME.expect.toml`.
const EXPECTATIONS: &str = r#"# Checks this sidecar is known to fail. Each entry turns that failure into an "expected
# failure" (reported as such; the run still passes) and a pass of the check into an error (so
# the file stays true). Add one only with the reason and where it can be read upstream:
#
# [[fail]]
# check = "core::resiliency::max_retries_2"     # a check id (`pubsub-tck list`)
# brokers = ["redis"]                           # optional: only on these brokers
# intermittent = false                          # optional: true for a race (a pass stays a pass)
# reason = "why the sidecar fails it"
# upstream = "the issue or source line that shows it"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pubsub-tck-init-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Arguments for a first init (no `--force`).
    fn args(name: &str, command: &str, flags: Flags) -> InitArgs {
        InitArgs {
            name: name.into(),
            command: command.into(),
            flags,
            force: false,
        }
    }

    #[test]
    fn the_scaffold_loads_as_a_target_with_its_expectations() {
        let dir = scratch("loads");
        let args = args("my-sidecar", "bin/sidecar", Flags::Daprd);
        let (target, expect) = init(&args, &dir).unwrap();
        assert!(expect.exists());
        let t = harness::TargetFile::load(&target).unwrap();
        assert_eq!(t.name(), "my-sidecar");
        assert!(t.expectations().is_some());
        let text = std::fs::read_to_string(&target).unwrap();
        assert!(
            text.contains(&format!("command = \"{}/bin/sidecar\"", dir.display())),
            "{text}"
        );
        // Every broker's promises are written out, as its defaults, and every promise named.
        for b in harness::Broker::ALL {
            assert_eq!(t.promises(b), harness::promise::defaults(b), "{b}");
        }
        for p in harness::Promise::ALL {
            assert!(
                text.contains(&format!("#   {}", p.name())),
                "{p} is not explained"
            );
        }
        // Every placeholder the harness knows is explained in the file.
        for p in harness::target::PLACEHOLDERS {
            assert!(
                text.contains(&format!("#   {{{p}}}")),
                "{p} is not explained"
            );
        }
        // A second init refuses to overwrite; --force does.
        assert!(init(&args, &dir).is_err());
        init(
            &InitArgs {
                force: true,
                flags: Flags::Minimal,
                ..args
            },
            &dir,
        )
        .unwrap();
        harness::TargetFile::load(&target).unwrap();
    }

    #[test]
    fn a_name_that_is_not_a_file_name_is_refused() {
        let dir = scratch("refused");
        assert!(init(&args("../x", "daprd", Flags::Minimal), &dir).is_err());
    }
}
