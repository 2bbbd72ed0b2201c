//! Small serde helpers shared by the config model and its JSON front-end.

use serde::Serializer;
use std::time::Duration;

/// Serializes a duration as whole milliseconds (fields are named `*_ms`).
pub fn as_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// For `skip_serializing_if`: leave out values that are at their default.
pub fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// [`as_millis`] for an optional duration (with `skip_serializing_if = "Option::is_none"`).
pub fn opt_as_millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => as_millis(d, s),
        None => s.serialize_none(),
    }
}

/// For `skip_serializing_if`: leave out flags at their default of `true`.
pub fn is_true(v: &bool) -> bool {
    *v
}

/// Serializes a secret that is set as `"(hidden)"`: `--print-config` output ends up in
/// tickets and chats.
pub fn redacted<S: Serializer>(secret: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str("(hidden)"),
        None => s.serialize_none(),
    }
}
