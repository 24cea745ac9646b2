//! Routing rules: CEL `match` expressions over the CloudEvent, evaluated in order, first match wins.
//!
//! The only variable is `event`, the CloudEvent as decoded JSON. As in daprd, JSON numbers are
//! doubles, undeclared names compile and fail at evaluation, and an evaluation error is a
//! processing error (not a non-match). Owns compilation and evaluation, not delivery.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::common::types::{CelBool, CelDouble, CelList, CelMap, CelMapKey, CelNull, CelString};
use cel::common::value::Val;

/// The standard CEL environment, built once. `cel::Context::default()` builds it anew on every
/// call (registering every standard function), which was most of the cost of evaluating a rule.
static STDLIB: LazyLock<Arc<cel::Env>> = LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// One rule: an optional CEL expression and the app path it routes to.
#[derive(Clone)]
pub struct Rule {
    /// The expression as written (trimmed); empty means "always".
    pub expr: String,
    /// The app path, cleaned like Go's `path.Clean` with a leading `/`.
    pub path: String,
    program: Option<Arc<cel::Program>>,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("expr", &self.expr)
            .field("path", &self.path)
            .finish()
    }
}

/// A `match` expression that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid CEL expression {expr:?}: {message}")]
pub struct CompileError {
    expr: String,
    message: String,
}

/// Why an event could not be routed (daprd's "error finding matching route").
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The expression failed at run time (missing key, type error, unknown name).
    #[error("evaluating {expr:?}: {message}")]
    Evaluation {
        /// The failing expression.
        expr: String,
        /// What the CEL engine said.
        message: String,
    },
    /// The expression returned something other than a bool.
    #[error("expression {expr:?} did not return a bool")]
    NotBool {
        /// The offending expression.
        expr: String,
    },
    /// The rule needs the event but the body is not a JSON object.
    #[error("the event is not a JSON object")]
    NoEvent,
}

impl Rule {
    /// Compiles a rule; an empty `expr` always matches.
    pub fn new(expr: &str, path: &str) -> Result<Rule, CompileError> {
        let mut rule = Rule::verbatim(expr, path)?;
        rule.path = clean_path(path);
        Ok(rule)
    }

    /// A rule whose path is kept exactly as given: a gRPC app's routes, which daprd passes on
    /// unchanged (an empty path stays empty; the app's SDK matches on it).
    pub fn verbatim(expr: &str, path: &str) -> Result<Rule, CompileError> {
        let expr = expr.trim().to_owned();
        let program = if expr.is_empty() {
            None
        } else {
            let program = cel::Program::compile(&expr).map_err(|e| CompileError {
                expr: expr.clone(),
                message: e.to_string(),
            })?;
            Some(Arc::new(program))
        };
        Ok(Rule {
            expr,
            path: path.to_owned(),
            program,
        })
    }

    /// Whether this rule needs the decoded event to decide.
    pub fn needs_event(&self) -> bool {
        self.program.is_some()
    }

    /// Evaluates the rule in `ctx`, the context holding `event` (`None`: the body is not a JSON
    /// object).
    fn matches(&self, ctx: Option<&cel::Context<'_, '_>>) -> Result<bool, RouteError> {
        let Some(program) = &self.program else {
            return Ok(true);
        };
        let ctx = ctx.ok_or(RouteError::NoEvent)?;
        match program.execute(ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(_) => Err(RouteError::NotBool {
                expr: self.expr.clone(),
            }),
            Err(e) => Err(RouteError::Evaluation {
                expr: self.expr.clone(),
                message: e.to_string(),
            }),
        }
    }
}

/// Picks the path of the first matching rule, `Ok(None)` when none matches.
/// `event` is decoded lazily, only when a rule with an expression is reached; it is then
/// converted once into one evaluation context shared by the remaining rules (evaluation only
/// reads the context).
pub fn route(
    rules: &[Rule],
    event: impl FnOnce() -> Option<serde_json::Value>,
) -> Result<Option<&str>, RouteError> {
    // A rule without an expression always matches, so only a leading expression needs the event.
    match rules.first() {
        None => return Ok(None),
        Some(r) if !r.needs_event() => return Ok(Some(r.path.as_str())),
        Some(_) => {}
    }
    let json = event();
    let ctx = json.as_ref().map(|json| {
        let mut c = cel::Context::with_env(Arc::clone(&STDLIB));
        c.add_variable_as_val("event", json_to_val(json));
        c
    });
    for rule in rules {
        if rule.matches(ctx.as_ref())? {
            return Ok(Some(rule.path.as_str()));
        }
    }
    Ok(None)
}

/// The CEL value of JSON, built directly (what [`json_to_cel`] followed by the context's own
/// conversion gives, without the intermediate tree): numbers are doubles, strings borrow from
/// `v`.
fn json_to_val(v: &serde_json::Value) -> Box<dyn Val + '_> {
    match v {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(b) => Box::new(CelBool::from(*b)),
        serde_json::Value::Number(n) => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::String(s) => Box::new(CelString::from(s.as_str())),
        serde_json::Value::Array(a) => {
            Box::new(CelList::from(a.iter().map(json_to_val).collect::<Vec<_>>()))
        }
        serde_json::Value::Object(o) => {
            let map: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = o
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), json_to_val(v)))
                .collect();
            Box::new(CelMap::from(map))
        }
    }
}

/// Converts JSON to a CEL value with every number as a double, as cel-go sees decoded JSON.
pub fn json_to_cel(v: &serde_json::Value) -> cel::Value {
    match v {
        serde_json::Value::Null => cel::Value::Null,
        serde_json::Value::Bool(b) => cel::Value::Bool(*b),
        serde_json::Value::Number(n) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(a) => {
            cel::Value::List(Arc::new(a.iter().map(json_to_cel).collect()))
        }
        serde_json::Value::Object(o) => {
            let map: HashMap<String, cel::Value> =
                o.iter().map(|(k, v)| (k.clone(), json_to_cel(v))).collect();
            cel::Value::Map(map.into())
        }
    }
}

/// Go's `path.Clean` applied to an app route, with a leading `/`: `orders` → `/orders`,
/// `/a/../b/` → `/b`.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(p.len() + 1);
    for seg in &parts {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hostile_expressions_fail_without_panicking() {
        let event = json!({"data": {"n": 1.0, "s": "abc", "l": [1, 2]}});
        for expr in [
            "9223372036854775807 + 1 == 0",
            "-9223372036854775807 - 2 == 0",
            "9223372036854775807 * 2 == 0",
            "-9223372036854775808 / -1 == 0",
            "-9223372036854775808 % -1 == 0",
            "1 / 0 == 0",
            "1 % 0 == 0",
            "18446744073709551615u + 1u == 0u",
            "0u - 1u == 0u",
            "int(1e300) == 0",
            "uint(-1) == 0u",
            "int(event.data.n * 1e300) == 0",
            "event.data.l[5] == 1",
            "event.data.l[-1] == 1",
            "event.data.s[0] == 'a'",
            "size(event.data.s) > 99999999999",
            "event.data.s.matches('(((((a*)*)*)*)*b')",
            "timestamp('9999-12-31T23:59:59Z') + duration('87600h') > timestamp('1970-01-01T00:00:00Z')",
            "duration('9999999999999h') > duration('1s')",
            "string(1.0/0.0) == 'inf'",
        ] {
            if let Ok(rule) = Rule::new(expr, "/x") {
                let _ = route(std::slice::from_ref(&rule), || Some(event.clone()));
            }
        }
    }

    fn rules(spec: &[(&str, &str)]) -> Vec<Rule> {
        spec.iter().map(|(e, p)| Rule::new(e, p).unwrap()).collect()
    }

    #[test]
    fn first_matching_rule_wins_default_last() {
        let r = rules(&[
            (r#"event.type == "widget""#, "/widgets"),
            ("event.data.amount > 100.0", "/big"),
            ("", "/orders"),
        ]);
        let ev = json!({"type": "widget", "data": {"amount": 1000}});
        assert_eq!(route(&r, || Some(ev.clone())).unwrap(), Some("/widgets"));
        let ev = json!({"type": "x", "data": {"amount": 1000}});
        assert_eq!(route(&r, || Some(ev.clone())).unwrap(), Some("/big"));
        let ev = json!({"type": "x", "data": {"amount": 1}});
        assert_eq!(route(&r, || Some(ev.clone())).unwrap(), Some("/orders"));
    }

    #[test]
    fn numbers_are_doubles() {
        let r = rules(&[
            ("int(event.data.n) > 5", "/a"),
            ("event.data.n > 5.0", "/b"),
        ]);
        assert_eq!(
            route(&r, || Some(json!({"data": {"n": 7}}))).unwrap(),
            Some("/a")
        );
    }

    #[test]
    fn no_match_and_errors() {
        let r = rules(&[(r#"event.type == "a""#, "/a")]);
        assert_eq!(route(&r, || Some(json!({"type": "b"}))).unwrap(), None);
        // Unquoted literal, as in the docs example: compiles, fails at evaluation.
        let r = rules(&[("event.type == order", "/a")]);
        assert!(route(&r, || Some(json!({"type": "order"}))).is_err());
        let r = rules(&[("event.data.missing == 1.0", "/a")]);
        assert!(route(&r, || Some(json!({"data": {}}))).is_err());
        let r = rules(&[("event.type", "/a")]);
        assert!(matches!(
            route(&r, || Some(json!({"type": "x"}))),
            Err(RouteError::NotBool { .. })
        ));
    }

    #[test]
    fn no_event_needed_for_plain_default() {
        let r = rules(&[("", "orders")]);
        assert_eq!(
            route(&r, || panic!("must not decode")).unwrap(),
            Some("/orders")
        );
    }

    #[test]
    fn shared_context_evaluates_like_a_fresh_one() {
        // The old evaluation: a default context per rule with the event converted through
        // `cel::Value`. The shared context must give the same answer for every expression.
        let event = json!({
            "type": "order", "id": "a-1", "data": {"n": 7, "big": 12345678901234567890u64,
            "tags": ["x", "y"], "nested": {"k": null, "t": true}, "s": "é\u{0}"}
        });
        for expr in [
            r#"event.type == "order""#,
            "event.data.n == 7.0",
            "event.data.n > 5.0 && event.data.tags.size() == 2",
            r#""x" in event.data.tags"#,
            "event.data.nested.k == null",
            "event.data.nested.t",
            "has(event.data.nested.k)",
            "has(event.data.missing)",
            r#"event.data.s.startsWith("é")"#,
            "event.data.big > 1.0e19",
            "int(event.data.n) == 7",
            "event.data.missing == 1.0",
            "event.type == order",
            "event.data.tags[0]",
            r#"event.data.exists(k, k == "n")"#,
        ] {
            let program = cel::Program::compile(expr).unwrap();
            let mut fresh = cel::Context::default();
            fresh.add_variable_from_value("event", json_to_cel(&event));
            let old = match program.execute(&fresh) {
                Ok(cel::Value::Bool(b)) => Ok(b),
                Ok(_) => Err("not bool".to_owned()),
                Err(e) => Err(e.to_string()),
            };
            let rule = [Rule::new(expr, "/a").unwrap()];
            let new = match route(&rule, || Some(event.clone())) {
                Ok(m) => Ok(m.is_some()),
                Err(RouteError::NotBool { .. }) => Err("not bool".to_owned()),
                Err(RouteError::Evaluation { message, .. }) => Err(message),
                Err(RouteError::NoEvent) => Err("no event".to_owned()),
            };
            assert_eq!(new, old, "{expr}");
        }
    }

    #[test]
    fn compile_errors_are_reported() {
        assert!(Rule::new("event.type ==", "/a").is_err());
    }

    #[test]
    fn cleans_paths() {
        assert_eq!(clean_path("orders"), "/orders");
        assert_eq!(clean_path("/orders/"), "/orders");
        assert_eq!(clean_path("a/../b"), "/b");
        assert_eq!(clean_path("//x//y"), "/x/y");
        assert_eq!(clean_path(""), "/");
    }
}
