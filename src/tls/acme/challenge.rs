//! HTTP-01 answers: the key authorization of each pending challenge by token, written
//! by orders and read by the plain listeners for `/.well-known/acme-challenge/TOKEN`.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

/// The path prefix HTTP-01 validation requests use (RFC 8555 §8.3).
pub const PREFIX: &str = "/.well-known/acme-challenge/";

/// Pending HTTP-01 challenges. Reading is one atomic load and a map lookup; only
/// requests under [`PREFIX`] read it, and only when ACME is configured.
#[derive(Debug, Default)]
pub struct Challenges {
    tokens: ArcSwap<HashMap<String, Arc<str>>>,
}

impl Challenges {
    /// Answers `token` with `key_authorization` until [`Challenges::remove`].
    pub fn insert(&self, token: &str, key_authorization: &str) {
        let answer: Arc<str> = Arc::from(key_authorization);
        self.tokens.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(token.to_string(), Arc::clone(&answer));
            map
        });
    }

    pub fn remove(&self, token: &str) {
        self.tokens.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.remove(token);
            map
        });
    }

    /// The body to answer a request for `path` with, if it is a pending challenge's.
    pub fn answer(&self, path: &str) -> Option<Arc<str>> {
        let token = path.strip_prefix(PREFIX)?;
        self.tokens.load().get(token).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pending_tokens_under_the_prefix_are_answered() {
        let c = Challenges::default();
        c.insert("tok", "tok.thumb");
        assert_eq!(
            c.answer("/.well-known/acme-challenge/tok").as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(c.answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(c.answer("/tok"), None);
        c.remove("tok");
        assert_eq!(c.answer("/.well-known/acme-challenge/tok"), None);
    }
}
