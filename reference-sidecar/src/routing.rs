//! Routing rules: CEL `match` expressions over the CloudEvent, evaluated in order, first match wins.
//!
//! The only variable is `event`, the CloudEvent as decoded JSON. As in daprd, JSON numbers are
//! doubles, undeclared names compile and fail at evaluation, and an evaluation error is a
//! processing error (not a non-match). Owns compilation and evaluation, not delivery.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

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
            path: clean_path(path),
            program,
        })
    }

    /// Whether this rule needs the decoded event to decide.
    pub fn needs_event(&self) -> bool {
        self.program.is_some()
    }

    fn matches(&self, event: Option<&cel::Value>) -> Result<bool, RouteError> {
        let Some(program) = &self.program else {
            return Ok(true);
        };
        let event = event.ok_or(RouteError::NoEvent)?;
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("event", event.clone());
        match program.execute(&ctx) {
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
/// `event` is decoded lazily, only when a rule with an expression is reached.
pub fn route(
    rules: &[Rule],
    event: impl FnOnce() -> Option<serde_json::Value>,
) -> Result<Option<&str>, RouteError> {
    let mut decoded: Option<Option<cel::Value>> = None;
    let mut event = Some(event);
    for rule in rules {
        let matched = if rule.needs_event() {
            if decoded.is_none() {
                let json = event.take().and_then(|f| f());
                decoded = Some(json.as_ref().map(json_to_cel));
            }
            rule.matches(decoded.as_ref().and_then(|d| d.as_ref()))?
        } else {
            true
        };
        if matched {
            return Ok(Some(rule.path.as_str()));
        }
    }
    Ok(None)
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
