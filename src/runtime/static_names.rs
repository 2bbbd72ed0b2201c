//! Header names from the configuration, kept for the life of the process so that a request
//! sending one copies a pointer instead of counting a reference.
//!
//! A name made from a `String` is a shared `Bytes`: every request that inserts it takes a
//! reference (an atomic increment) and gives it back when its header map is dropped, four
//! times per request for the tutorial's forwarding headers. A name made from a
//! `&'static str` costs neither. Each distinct name is kept once however often the
//! configuration is reloaded, so what is kept is bounded by the names ever configured.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

/// The process's one kept copy of `name`.
pub fn static_name(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    // The set is only read and added to: a panic elsewhere while it was held leaves it whole.
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&kept) = names.get(name) {
        return kept;
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_kept_once_and_returned_as_given() {
        let first = static_name("X-Real-IP");
        let again = static_name(&String::from("X-Real-IP"));
        assert_eq!(first, "X-Real-IP");
        assert!(std::ptr::eq(first, again), "one copy per distinct name");
        assert_eq!(
            static_name("x-real-ip"),
            "x-real-ip",
            "case is part of the name"
        );
        assert!(!std::ptr::eq(first, static_name("x-real-ip")));
    }
}
