//! The scriptable test app, driven over real HTTP.

use std::time::Duration;

use bytes::Bytes;
use harness::{Script, TestApp, TestAppConfig};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

fn ce(id: &str, tck_id: &str) -> String {
    json!({"specversion": "1.0", "id": id, "type": "t", "source": "s", "data": {"tck_id": tck_id}})
        .to_string()
}

async fn deliver(app: &TestApp, route: &str, body: String) -> reqwest::Result<(u16, String)> {
    let resp = reqwest::Client::new()
        .post(format!("{}{route}", app.url()))
        .header("content-type", "application/cloudevents+json")
        .header("Pubsubname", "pubsub")
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

#[tokio::test]
async fn serves_subscriptions_and_records_calls() {
    let app = TestApp::start(TestAppConfig::default()).await.unwrap();
    let url = format!("{}/dapr/subscribe", app.url());
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(&url).send().await.unwrap().text().await.unwrap(),
        "[]"
    );

    app.set_subscriptions(json!([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]));
    let body = c
        .get(&url)
        .header("dapr-app-id", "a1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        body,
        r#"[{"pubsubname":"pubsub","route":"/orders","topic":"orders"}]"#
    );

    app.set_subscribe_response(500, "not json");
    let resp = c.get(&url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    assert_eq!(resp.text().await.unwrap(), "not json");

    let calls = app.wait_subscribe_calls(3, WAIT).await.unwrap();
    assert_eq!(calls[1].header("Dapr-App-Id"), Some("a1"));
    assert!(
        app.deliveries().is_empty(),
        "subscribe calls are not deliveries"
    );

    // /dapr/config is answered 404 and kept apart too.
    let resp = c
        .get(format!("{}/dapr/config", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(app.config_calls().len(), 1);
    assert!(app.deliveries().is_empty());
}

#[tokio::test]
async fn scripts_follow_attempts_per_message_and_route() {
    let app = TestApp::start(TestAppConfig::default()).await.unwrap();
    app.script("/orders", Script::RetryThenSuccess(1));
    app.script("/gone", Script::Http(404));

    let retry = r#"{"status":"RETRY"}"#;
    let success = r#"{"status":"SUCCESS"}"#;
    let expected = [
        ("/orders", ce("e1", "m1"), 200, retry),
        ("/orders", ce("e2", "m2"), 200, retry),
        ("/orders", ce("e1", "m1"), 200, success),
        ("/gone", ce("e1", "m1"), 404, r#"{"scripted":404}"#),
        ("/other", "not json".into(), 200, success),
    ];
    for (route, body, status, answer) in expected {
        let got = deliver(&app, route, body).await.unwrap();
        assert_eq!(got, (status, answer.to_owned()), "{route}");
    }

    let all = app.deliveries();
    let summary: Vec<String> = all
        .iter()
        .map(|d| {
            format!(
                "{} {} {:?} a{} {}",
                d.request.seq, d.request.path, d.tck_id, d.attempt, d.answered
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            r#"0 /orders Some("m1") a1 200 {"status":"RETRY"}"#,
            r#"1 /orders Some("m2") a1 200 {"status":"RETRY"}"#,
            r#"2 /orders Some("m1") a2 200 {"status":"SUCCESS"}"#,
            r#"3 /gone Some("m1") a1 404 {"scripted":404}"#,
            r#"4 /other None a1 200 {"status":"SUCCESS"}"#,
        ]
    );
    let d = &all[0];
    assert_eq!(d.request.method, "POST");
    assert_eq!(d.ce_id.as_deref(), Some("e1"));
    assert_eq!(d.content_type(), Some("application/cloudevents+json"));
    assert_eq!(d.header("pubsubname"), Some("pubsub"));
    assert!(
        d.request
            .headers
            .iter()
            .all(|(k, _)| k == &k.to_lowercase())
    );
    assert_eq!(d.body_json.as_ref().unwrap()["specversion"], "1.0");
    assert!(all[4].body_json.is_none());
    assert_eq!(all[4].request.body, Bytes::from_static(b"not json"));
    assert_eq!(app.deliveries_on("/orders").len(), 3);
}

#[tokio::test]
async fn odd_answers() {
    let app = TestApp::start(TestAppConfig::default()).await.unwrap();
    app.script("/empty", Script::Empty2xx);
    app.script("/garbage", Script::Garbage2xx);
    app.script("/lower", Script::Status("success".into()));
    app.script(
        "/raw",
        Script::Respond(200, Bytes::from_static(br#"{"STATUS":"DROP"}"#)),
    );
    app.script(
        "/seq",
        Script::Sequence(vec![Script::Http(503), Script::Status("DROP".into())]),
    );
    let drop = r#"{"status":"DROP"}"#;
    let expected = [
        ("/empty", 200, ""),
        ("/garbage", 200, "not json"),
        ("/lower", 200, r#"{"status":"success"}"#),
        ("/raw", 200, r#"{"STATUS":"DROP"}"#),
        ("/seq", 503, r#"{"scripted":503}"#),
        ("/seq", 200, drop),
        ("/seq", 200, drop),
    ];
    for (route, status, answer) in expected {
        let got = deliver(&app, route, ce("1", "1")).await.unwrap();
        assert_eq!(got, (status, answer.to_owned()), "{route}");
    }
}

#[tokio::test]
async fn close_connection_gives_a_transport_error_and_is_recorded() {
    let app = TestApp::start(TestAppConfig::default()).await.unwrap();
    app.script(
        "/orders",
        Script::Sequence(vec![Script::CloseConnection, Script::Success]),
    );
    let err = deliver(&app, "/orders", ce("e1", "m1")).await.unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    // The redelivery on a fresh connection succeeds.
    assert_eq!(
        deliver(&app, "/orders", ce("e1", "m1")).await.unwrap().0,
        200
    );
    let got = app.wait_deliveries(Some("/orders"), 2, WAIT).await.unwrap();
    assert_eq!(got[0].answered, "close-connection");
    assert_eq!(got[1].attempt, 2);
}

#[tokio::test]
async fn wait_deliveries_wakes_on_arrival_and_times_out_with_a_clear_message() {
    let app = std::sync::Arc::new(TestApp::start(TestAppConfig::default()).await.unwrap());
    let err = app
        .wait_deliveries(Some("/orders"), 1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "waited 50ms for 1 deliveries on /orders, saw 0"
    );

    let app2 = std::sync::Arc::clone(&app);
    let waiter = tokio::spawn(async move { app2.wait_deliveries(Some("/orders"), 2, WAIT).await });
    deliver(&app, "/orders", ce("a", "a")).await.unwrap();
    deliver(&app, "/elsewhere", ce("b", "b")).await.unwrap();
    deliver(&app, "/orders", ce("c", "c")).await.unwrap();
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(app.wait_deliveries(None, 3, WAIT).await.unwrap().len(), 3);

    let err = app
        .wait_subscribe_calls(1, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "waited 10ms for 1 /dapr/subscribe calls, saw 0"
    );
}

#[tokio::test]
async fn concurrent_requests_are_counted_in_flight() {
    let app = std::sync::Arc::new(TestApp::start(TestAppConfig::default()).await.unwrap());
    app.script(
        "/slow",
        Script::Delay(Duration::from_millis(300), Box::new(Script::Success)),
    );
    let mut tasks = Vec::new();
    for i in 0..4 {
        let app = std::sync::Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            deliver(&app, "/slow", ce(&i.to_string(), &i.to_string())).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().0, 200);
    }
    let got = app.deliveries_on("/slow");
    assert_eq!(got.iter().map(|d| d.in_flight).max(), Some(4));
    assert!(
        got.iter()
            .all(|d| d.answered == r#"after 300ms: 200 {"status":"SUCCESS"}"#)
    );
}

#[tokio::test]
async fn hang_holds_the_request_until_stop_and_restart_keeps_recordings() {
    let app = std::sync::Arc::new(TestApp::start(TestAppConfig::default()).await.unwrap());
    app.script("/hang", Script::Hang);
    let app2 = std::sync::Arc::clone(&app);
    let hung = tokio::spawn(async move { deliver(&app2, "/hang", ce("h", "h")).await });
    app.wait_deliveries(Some("/hang"), 1, WAIT).await.unwrap();
    assert!(!hung.is_finished());

    app.stop().await;
    assert!(
        hung.await.unwrap().is_err(),
        "a hanging request ends without a response"
    );
    assert!(!app.is_running());
    let refused = deliver(&app, "/x", ce("x", "x")).await.unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");

    app.restart_on_same_port().await.unwrap();
    assert_eq!(deliver(&app, "/x", ce("x", "x")).await.unwrap().0, 200);
    let all = app.deliveries();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].answered, "hang");
    assert!(all[1].request.at_micros > all[0].request.at_micros);
}

#[tokio::test]
async fn start_on_a_given_port_and_observe_quiet() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = TestApp::start_on(port, TestAppConfig::default())
        .await
        .unwrap();
    assert_eq!(app.port(), port);
    deliver(&app, "/a", ce("1", "1")).await.unwrap();
    let seen = app
        .observe_quiet(Some("/a"), Duration::from_millis(20))
        .await;
    assert_eq!(seen.len(), 1);
    let busy = TestApp::start_on(port, TestAppConfig::default())
        .await
        .unwrap_err();
    assert_eq!(
        busy.to_string(),
        format!("cannot bind the test app to 127.0.0.1:{port}")
    );
}

#[tokio::test]
async fn recordings_convert_to_history_events() {
    let trial_start = std::time::Instant::now();
    let app = TestApp::start(TestAppConfig::default()).await.unwrap();
    app.script("/orders", Script::RetryThenSuccess(1));
    let body = json!({"id": "e1", "topic": "orders", "data": {"tck_id": "m1", "tck_key": "k", "tck_seq": 3}});
    deliver(&app, "/orders", body.to_string()).await.unwrap();
    deliver(&app, "/orders", body.to_string()).await.unwrap();
    let events = app.history_events(trial_start);
    let expected = [
        harness_history::Delivery::new("m1", "/orders", 1, "RETRY")
            .with_ce_id("e1")
            .with_topic("orders")
            .with_key("k")
            .with_seq(3),
        harness_history::Delivery::new("m1", "/orders", 2, "SUCCESS")
            .with_ce_id("e1")
            .with_topic("orders")
            .with_key("k")
            .with_seq(3),
    ];
    let got: Vec<_> = events.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(got, expected.map(harness_history::EventKind::from).to_vec());
    assert!(events[0].at_micros <= events[1].at_micros);
}
