//! The `tck-mutant` proxy in front of the test app, and its process wrapper with `sh`.

// `allow-unwrap-in-tests` does not reach helper functions in `tests/` (rust-clippy #13981).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use harness::{Script, TestApp, TestAppConfig};
use harness_mutant::{ForwardSignal, Mode, MutantConfig, run, serve_proxy};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(5);

struct Setup {
    app: TestApp,
    proxy_url: String,
    _stop: watch::Sender<bool>,
}

async fn setup(mode: Mode) -> Setup {
    let app = TestApp::start(TestAppConfig::default()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = watch::channel(false);
    tokio::spawn(serve_proxy(listener, mode, app.port(), rx));
    Setup {
        app,
        proxy_url,
        _stop: stop,
    }
}

async fn deliver(s: &Setup, n: u32) -> String {
    let body =
        json!({"specversion": "1.0", "id": format!("e{n}"), "data": {"tck_id": format!("m{n}")}});
    reqwest::Client::new()
        .post(format!("{}/orders", s.proxy_url))
        .header("content-type", "application/cloudevents+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn none_passes_everything_through() {
    let s = setup(Mode::None).await;
    s.app
        .set_subscriptions(json!([{"pubsubname": "p", "topic": "t", "route": "/orders"}]));
    let subs = reqwest::get(format!("{}/dapr/subscribe", s.proxy_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        subs,
        r#"[{"pubsubname":"p","route":"/orders","topic":"t"}]"#
    );
    s.app.script("/orders", Script::Status("RETRY".into()));
    assert_eq!(deliver(&s, 1).await, r#"{"status":"RETRY"}"#);
    let d = &s.app.deliveries_on("/orders")[0];
    assert_eq!(d.content_type(), Some("application/cloudevents+json"));
    assert_eq!(d.body_json.as_ref().unwrap()["specversion"], "1.0");
    assert_eq!(s.app.subscribe_calls().len(), 1);
}

#[tokio::test]
async fn strip_specversion_and_content_type_json_change_the_request() {
    let s = setup(Mode::StripSpecversion).await;
    deliver(&s, 1).await;
    let d = &s.app.deliveries_on("/orders")[0];
    assert!(d.body_json.as_ref().unwrap().get("specversion").is_none());
    assert_eq!(d.tck_id.as_deref(), Some("m1"));

    let s = setup(Mode::ContentTypeJson).await;
    deliver(&s, 1).await;
    assert_eq!(
        s.app.deliveries_on("/orders")[0].content_type(),
        Some("application/json")
    );
}

#[tokio::test]
async fn retry_to_success_rewrites_the_answer() {
    let s = setup(Mode::RetryToSuccess).await;
    s.app.script("/orders", Script::Status("RETRY".into()));
    assert_eq!(deliver(&s, 1).await, r#"{"status":"SUCCESS"}"#);
    assert_eq!(
        s.app.deliveries_on("/orders")[0].answered,
        r#"200 {"status":"RETRY"}"#
    );
}

#[tokio::test]
async fn deliver_twice_and_drop_every_3rd_change_delivery_counts() {
    let s = setup(Mode::DeliverTwice).await;
    s.app.script("/orders", Script::RetryThenSuccess(1));
    // The second copy's answer is the one the sidecar sees.
    assert_eq!(deliver(&s, 1).await, r#"{"status":"SUCCESS"}"#);
    let got = s
        .app
        .wait_deliveries(Some("/orders"), 2, WAIT)
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|d| d.attempt).collect::<Vec<_>>(),
        vec![1, 2]
    );

    let s = setup(Mode::DropEvery3rd).await;
    for n in 1..=6 {
        assert_eq!(deliver(&s, n).await, r#"{"status":"SUCCESS"}"#);
    }
    let ids: Vec<String> = s
        .app
        .deliveries_on("/orders")
        .iter()
        .filter_map(|d| d.tck_id.clone())
        .collect();
    assert_eq!(ids, vec!["m1", "m2", "m4", "m5"]);
}

#[tokio::test]
async fn an_unreachable_app_closes_the_sidecars_connection() {
    let s = setup(Mode::None).await;
    s.app.stop().await;
    let err = reqwest::Client::new()
        .post(format!("{}/orders", s.proxy_url))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request(), "{err:?}");
}

#[tokio::test]
async fn run_redirects_the_app_port_forwards_signals_and_returns_the_exit_code() {
    let dir = std::env::temp_dir().join(format!("pubsub-tck-mutant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("up");
    let _ = std::fs::remove_file(&marker);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    // `$2` is the rewritten app port; the trap makes SIGTERM observable as exit code 5.
    let script = "trap 'exit 5' TERM; echo \"$2\" > \"$3\"; while :; do sleep 0.02; done";
    let config = MutantConfig {
        mode: Mode::None,
        app_port: 1,
        command: [
            "sh",
            "-c",
            script,
            "sh",
            "--app-port",
            "1",
            marker.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec(),
        cwd: dir.clone(),
        api: None,
        app_protocol: harness::AppProtocol::Http,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(run(listener, config, rx));
    let until = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let written = loop {
        if let Ok(s) = std::fs::read_to_string(&marker)
            && s.ends_with('\n')
        {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "waited {WAIT:?} for the wrapped process to start"
        );
        tick.tick().await;
    };
    assert_eq!(written.trim(), proxy_port.to_string());
    tx.send(ForwardSignal::Term).unwrap();
    assert_eq!(task.await.unwrap().unwrap(), 5);

    // A command without `--app-port`, and an API mode without its two ports, are refused before
    // anything starts.
    let refused = [
        (
            Mode::None,
            &["sh", "-c", "exit 7"][..],
            "the sidecar command has no `--app-port` argument to redirect",
        ),
        (
            Mode::TtlIgnored,
            &["sh", "-c", "exit 7", "--app-port", "1"][..],
            "mode `ttl-ignored` works on the sidecar's API: give --api-port and --sidecar-http-port",
        ),
    ];
    for (mode, command, error) in refused {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = MutantConfig {
            mode,
            app_port: 1,
            command: command.iter().map(|a| (*a).to_owned()).collect(),
            cwd: dir.clone(),
            api: None,
            app_protocol: harness::AppProtocol::Http,
        };
        let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let err = run(listener, config, rx).await.unwrap_err();
        assert_eq!(err.to_string(), error);
    }
}
