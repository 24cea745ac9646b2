//! Topic scoping from component metadata: `publishingScopes`, `subscriptionScopes`,
//! `allowedTopics`, `protectedTopics`, decided as daprd decides them.

use std::collections::{BTreeMap, BTreeSet};

/// Publish or subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Publishing (including dead-letter re-publishes).
    Publish,
    /// Subscribing.
    Subscribe,
}

/// Parsed scoping rules of one component.
#[derive(Debug, Clone, Default)]
pub struct Scopes {
    publishing: BTreeMap<String, Vec<String>>,
    subscription: BTreeMap<String, Vec<String>>,
    allowed: BTreeSet<String>,
    protected: BTreeSet<String>,
}

impl Scopes {
    /// Reads the four keys (names case-insensitive, spaces stripped).
    pub fn from_metadata(md: &BTreeMap<String, String>) -> Scopes {
        let get = |key: &str| {
            md.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.replace(' ', ""))
                .unwrap_or_default()
        };
        let topics = |s: String| -> BTreeSet<String> {
            s.split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Scopes {
            publishing: app_lists(&get("publishingScopes")),
            subscription: app_lists(&get("subscriptionScopes")),
            allowed: topics(get("allowedTopics")),
            protected: topics(get("protectedTopics")),
        }
    }

    /// Whether `app_id` may do `op` on `topic`.
    pub fn allows(&self, app_id: &str, topic: &str, op: Operation) -> bool {
        if !self.allowed.is_empty() && !self.allowed.contains(topic) {
            return false;
        }
        let lists = match op {
            Operation::Publish => &self.publishing,
            Operation::Subscribe => &self.subscription,
        };
        let own = lists.get(app_id);
        let listed = own.is_some_and(|l| l.iter().any(|t| t == topic));
        if self.protected.contains(topic) {
            return listed;
        }
        // A listed app's list is never empty: `app1=` lists the empty topic (`app_lists`).
        own.is_none() || listed
    }
}

/// `"app1=t1,t2;app2=t3"`. `app1=` yields `[""]`, which denies everything (daprd quirk).
fn app_lists(s: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for part in s.split(';').filter(|p| !p.is_empty()) {
        let Some((app, topics)) = part.split_once('=') else {
            continue;
        };
        let mut list: Vec<String> = topics.split(',').map(str::to_owned).collect();
        list.dedup();
        out.insert(app.to_owned(), list);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(pairs: &[(&str, &str)]) -> Scopes {
        Scopes::from_metadata(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn decisions() {
        let s = scopes(&[("publishingScopes", "app1=t1,t2;app2=")]);
        assert!(s.allows("app1", "t1", Operation::Publish));
        assert!(!s.allows("app1", "t3", Operation::Publish));
        assert!(
            !s.allows("app2", "t1", Operation::Publish),
            "app2= denies everything"
        );
        assert!(s.allows("other", "anything", Operation::Publish));
        assert!(s.allows("app1", "t3", Operation::Subscribe));
        let s = scopes(&[("allowedTopics", "a, b")]);
        assert!(
            s.allows("x", "a", Operation::Publish) && !s.allows("x", "c", Operation::Subscribe)
        );
        let s = scopes(&[("protectedTopics", "p"), ("PublishingScopes", "app1=p")]);
        assert!(s.allows("app1", "p", Operation::Publish));
        assert!(!s.allows("app2", "p", Operation::Publish));
    }
}
