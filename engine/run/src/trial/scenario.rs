//! [`Scenario`]: what a trial brings up, built with chained calls.

use super::*;

/// What to bring up: built with chained calls, then passed to [`Trial::start`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Scenario {
    pub(super) component_metadata: Vec<(String, String)>,
    pub(super) resources: Vec<String>,
    pub(super) subscriptions: Vec<Value>,
    pub(super) subscribe_reply: Option<(u16, Bytes)>,
    pub(super) subscribe_drops: u32,
    pub(super) scripts: Vec<(String, Script)>,
    pub(super) default_script: Script,
    pub(super) api_token: Option<String>,
    pub(super) app_api_token: Option<String>,
    pub(super) app_at_start: bool,
    pub(super) app_id: Option<String>,
    pub(super) proxied: Vec<Hop>,
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario::new()
    }
}

impl Scenario {
    /// An in-memory `pubsub` component, no subscriptions, an app that answers SUCCESS.
    pub fn new() -> Scenario {
        Scenario {
            component_metadata: Vec::new(),
            resources: Vec::new(),
            subscriptions: Vec::new(),
            subscribe_reply: None,
            subscribe_drops: 0,
            scripts: Vec::new(),
            default_script: Script::Success,
            api_token: None,
            app_api_token: None,
            app_at_start: true,
            app_id: None,
            proxied: Vec::new(),
        }
    }

    /// A programmatic v1 subscription: `topic` delivered to `route`.
    pub fn subscribe(self, topic: &str, route: &str) -> Scenario {
        self.subscription(json!({"pubsubname": PUBSUB, "topic": topic, "route": route}))
    }

    /// `topic` → `route` with dead-letter topic `dlq`, and a subscription of `dlq` → `dlq_route`.
    pub fn subscribe_with_dlq(
        self,
        topic: &str,
        route: &str,
        dlq: &str,
        dlq_route: &str,
    ) -> Scenario {
        self.subscription(
            json!({"pubsubname": PUBSUB, "topic": topic, "route": route, "deadLetterTopic": dlq}),
        )
        .subscribe(dlq, dlq_route)
    }

    /// Any programmatic subscription entry, as the app will serve it.
    pub fn subscription(mut self, entry: Value) -> Scenario {
        self.subscriptions.push(entry);
        self
    }

    /// Serve exactly this `/dapr/subscribe` reply instead of the entries.
    pub fn subscribe_reply(mut self, status: u16, body: impl Into<Bytes>) -> Scenario {
        self.subscribe_reply = Some((status, body.into()));
        self
    }

    /// The app closes the connection of its first `n` `GET /dapr/subscribe` calls unanswered
    /// (a gRPC app fails its first `n` `ListTopicSubscriptions` calls with UNAVAILABLE; an app
    /// started with the scenario; one started later answers every call).
    pub fn drop_subscribe_calls(mut self, n: u32) -> Scenario {
        self.subscribe_drops = n;
        self
    }

    /// An extra resource document (YAML): a declarative subscription, a Resiliency, ...
    pub fn resource(mut self, yaml: impl Into<String>) -> Scenario {
        self.resources.push(yaml.into());
        self
    }

    /// An inbound constant retry policy on `pubsub`.
    pub fn retry_constant(self, duration: &str, max_retries: i64) -> Scenario {
        self.retry_policy(&format!(
            "policy: constant\n        duration: {duration}\n        maxRetries: {max_retries}"
        ))
    }

    /// An inbound retry policy on `pubsub`; `body` is the policy's fields at 8 spaces indent.
    pub fn retry_policy(self, body: &str) -> Scenario {
        self.resource(format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: tck-resiliency\nspec:\n  policies:\n    retries:\n      tckRetry:\n        {body}\n  targets:\n    components:\n      {PUBSUB}:\n        inbound:\n          retry: tckRetry\n"
        ))
    }

    /// Routes these hops through fault proxies, so that network faults can be injected on
    /// them (see [`Trial::inject`]).
    pub fn through_proxies(mut self, hops: &[Hop]) -> Scenario {
        self.proxied = hops.to_vec();
        self
    }

    /// A metadata item on the `pubsub` component (scopes, ...).
    pub fn component_metadata(mut self, name: &str, value: &str) -> Scenario {
        self.component_metadata
            .push((name.to_owned(), value.to_owned()));
        self
    }

    /// How the app answers on `route`.
    pub fn script(mut self, route: &str, script: Script) -> Scenario {
        self.scripts.push((route.to_owned(), script));
        self
    }

    /// How the app answers on routes without their own script.
    pub fn default_script(mut self, script: Script) -> Scenario {
        self.default_script = script;
        self
    }

    /// Run the sidecar with `DAPR_API_TOKEN`.
    pub fn api_token(mut self, token: &str) -> Scenario {
        self.api_token = Some(token.to_owned());
        self
    }

    /// Run the sidecar with `APP_API_TOKEN`.
    pub fn app_api_token(mut self, token: &str) -> Scenario {
        self.app_api_token = Some(token.to_owned());
        self
    }

    /// Do not start the app with the sidecar; call [`Trial::start_app`] later.
    pub fn app_later(mut self) -> Scenario {
        self.app_at_start = false;
        self
    }

    /// A fixed app-id instead of a random one.
    pub fn app_id(mut self, id: &str) -> Scenario {
        self.app_id = Some(id.to_owned());
        self
    }
}
