//! Target files on disk, sidecar launch failures, attach mode and the API client, using the
//! test app as a stand-in HTTP server (no real sidecar needed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use harness::{
    ClientError, LaunchError, Sidecar, SidecarClient, SidecarOptions, TargetFile, TestApp,
    TestAppConfig,
};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join("pubsub-tck-sidecar-tests")
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn every_shipped_target_file_loads() {
    let dir = workspace_root().join("fixtures/targets");
    let mut files = vec![];
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        // `*.expect.toml` are expectations files, loaded through their target files.
        let expect = p.to_string_lossy().ends_with(".expect.toml");
        if p.extension().is_some_and(|x| x == "toml") && !expect {
            files.push(p);
        }
    }
    files.sort();
    let mut names = vec![];
    for f in &files {
        let t = TargetFile::load(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        names.push(format!(
            "{}{}",
            t.name(),
            if t.is_attach() { " (attach)" } else { "" }
        ));
    }
    names.sort();
    assert_eq!(
        names,
        vec![
            "attached (attach)",
            "daprd",
            "daprd-1.16",
            "daprd-1.17",
            "reference",
        ]
    );
    let reference = TargetFile::load(&dir.join("reference.toml")).unwrap();
    assert!(reference.has_capability("bulk"));
}

#[tokio::test]
async fn launch_failure_is_a_ready_error_with_the_log_tail() {
    let dir = scratch("launch-failure");
    let file = dir.join("broken.toml");
    std::fs::write(
        &file,
        r#"name = "broken"
command = "sh"
args = ["-c", "echo listening on $0; exit 4", "{http_port}"]
"#,
    )
    .unwrap();
    let target = TargetFile::load(&file).unwrap();
    let mut opts = SidecarOptions::new(&dir, dir.join("logs"));
    opts.ready_deadline = Duration::from_secs(5);
    let err = Sidecar::launch(&target, opts).await.unwrap_err();
    assert_eq!(err.to_string(), "target `broken` did not become ready");
    let LaunchError::Ready { source, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(
        source.to_string().contains("exited (exit status: 4)"),
        "{source}"
    );
    assert!(source.to_string().contains("listening on "), "{source}");
}

#[tokio::test]
async fn attach_mode_polls_ready_and_the_client_speaks_the_api() {
    // The test app answers any path with 200, so it can stand in for a sidecar here.
    let fake = TestApp::start(TestAppConfig::default()).await.unwrap();
    let dir = scratch("attach");
    let file = dir.join("attach.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"fake\"\nurl = \"{}\"\nready = \"/ready\"\n",
            fake.url()
        ),
    )
    .unwrap();
    let target = TargetFile::load(&file).unwrap();
    let mut opts = SidecarOptions::new(&dir, dir.join("logs"));
    opts.api_token = Some("tok".into());
    let mut sidecar = Sidecar::launch(&target, opts).await.unwrap();
    assert!(sidecar.is_attached());
    assert_eq!(sidecar.http_url(), fake.url());
    assert_eq!(sidecar.http_port(), Some(fake.port()));
    assert!(sidecar.terminate(Duration::from_secs(1)).await.is_none());
    assert!(matches!(
        sidecar.restart().await,
        Err(LaunchError::Attached { .. })
    ));
    sidecar.wait_healthz(Duration::from_secs(5)).await.unwrap();

    let client = sidecar.client();
    let resp = client
        .publish(
            "pubsub",
            "a/b c",
            Bytes::from_static(b"hello"),
            Some("text/plain"),
            &[("metadata.rawPayload", "true")],
        )
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json().unwrap()["status"], "SUCCESS");
    client
        .bulk_publish("pubsub", "orders", &serde_json::json!([]), &[])
        .await
        .unwrap();
    client.metadata().await.unwrap();

    let got: Vec<String> = fake
        .deliveries()
        .iter()
        .map(|d| {
            format!(
                "{} {} {:?} {:?} {:?}",
                d.request.method,
                d.request.path,
                d.request.query,
                d.header("dapr-api-token"),
                d.content_type()
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            r#"GET /ready None None None"#,
            r#"GET /v1.0/healthz None None None"#,
            r#"POST /v1.0/publish/pubsub/a/b%20c Some("metadata.rawPayload=true") Some("tok") Some("text/plain")"#,
            r#"POST /v1.0-alpha1/publish/bulk/pubsub/orders None Some("tok") Some("application/json")"#,
            r#"GET /v1.0/metadata None Some("tok") None"#,
        ]
    );
    assert_eq!(
        fake.deliveries()[2].request.body,
        Bytes::from_static(b"hello")
    );
}

#[tokio::test]
async fn client_errors_distinguish_connect_from_other_failures() {
    let app = TestApp::start(TestAppConfig::default()).await.unwrap();
    app.script("/v1.0/healthz", harness::Script::CloseConnection);
    let client = SidecarClient::new(app.url(), None).unwrap();
    assert!(matches!(
        client.healthz().await,
        Err(ClientError::Request { .. })
    ));
    app.stop().await;
    assert!(matches!(
        client.healthz().await,
        Err(ClientError::Connect { .. })
    ));
}
