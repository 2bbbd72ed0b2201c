//! Header names recognised once per distinct wire form and thread (pinlb patch).
//!
//! Every header line of every parsed head needs its `HeaderName` (parsed from the wire
//! bytes, which for a name that is not a standard one allocates), whether the wire form is
//! the title case of that name (see `deferred_case.rs`) and which framing header it is, if
//! any. The names repeat across the requests of a connection and across connections, so
//! each thread keeps a small direct-mapped memo from the exact wire bytes of a name to what
//! they were recognised as. The memo is a pure function of those bytes: a slot answers only
//! for the same bytes (compared in full, case-sensitively), a name that does not fit a slot
//! is recognised every time, and a name that collides with another one takes its slot.

use crate::title_case;
use http::header::{self, HeaderName};
use pingora_error::{ErrorType::*, OrErr, Result};
use std::cell::RefCell;

/// Which framing header a name is (pingora-core records these while parsing a head).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingName {
    /// None of the others.
    Other,
    /// `Host`
    Host,
    /// `Expect`
    Expect,
    /// `Upgrade`
    Upgrade,
    /// `Connection`
    Connection,
    /// `Keep-Alive`
    KeepAlive,
    /// `Content-Length`
    ContentLength,
    /// `Transfer-Encoding`
    TransferEncoding,
}

impl FramingName {
    /// The framing header `name` is.
    pub fn of(name: &HeaderName) -> Self {
        // Standard headers compare by their tag; `keep-alive` is not one in `http`.
        if *name == header::HOST {
            Self::Host
        } else if *name == header::EXPECT {
            Self::Expect
        } else if *name == header::UPGRADE {
            Self::Upgrade
        } else if *name == header::CONNECTION {
            Self::Connection
        } else if *name == header::CONTENT_LENGTH {
            Self::ContentLength
        } else if *name == header::TRANSFER_ENCODING {
            Self::TransferEncoding
        } else if name.as_str() == "keep-alive" {
            Self::KeepAlive
        } else {
            Self::Other
        }
    }
}

/// A header name as recognised from its wire form by [WireName::recognise()].
#[derive(Clone, Debug)]
pub struct WireName {
    /// The name.
    pub name: HeaderName,
    /// Whether the wire form is the title case of the name (`Content-Type`, not
    /// `content-type` or `ETag`).
    pub titled: bool,
    /// The framing header it is.
    pub framing: FramingName,
}

/// Sets of the memo (a power of two), each of [WAYS] slots.
const SETS: usize = 64;
const WAYS: usize = 2;
/// Longest wire name kept in the memo; longer ones are recognised every time.
pub(crate) const MAX_MEMO_LEN: usize = 32;

/// The exact bytes of a wire name of 1 to [MAX_MEMO_LEN] bytes, as its length and (up to)
/// four little-endian words that together cover every byte: the first eight (zero above a
/// shorter name) and the last eight, and for a name longer than 16 bytes the words at 8 and
/// at 16 (or at `len - 8`, overlapping). Two names have the same key if and only if they
/// have the same bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    len: usize,
    words: [u64; 4],
}

impl Key {
    #[inline(always)]
    fn of(wire: &[u8]) -> Self {
        let len = wire.len();
        debug_assert!((1..=MAX_MEMO_LEN).contains(&len));
        let words = if len < 8 {
            [title_case::short_word(wire), 0, 0, 0]
        } else {
            let first = title_case::word(wire, 0);
            let last = title_case::word(wire, len - 8);
            if len <= 16 {
                [first, last, 0, 0]
            } else {
                let second = title_case::word(wire, 8);
                let third = title_case::word(wire, (len - 8).min(16));
                [first, last, second, third]
            }
        };
        Self { len, words }
    }

    /// The memo set of the key: a multiplicative hash of its length and first and last words.
    #[inline(always)]
    fn set(&self) -> usize {
        let [first, last, ..] = self.words;
        let mixed =
            (first ^ last.rotate_left(29) ^ self.len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> (64 - SETS.trailing_zeros())) as usize
    }
}

struct Slot {
    key: Key,
    name: WireName,
}

type Memo = [[Option<Slot>; WAYS]; SETS];

thread_local! {
    static MEMO: RefCell<Memo> = const { RefCell::new([const { [const { None }; WAYS] }; SETS]) };
}

impl WireName {
    /// What the header name `wire`, as it arrived, is; an error if it is not a valid name.
    #[inline]
    pub fn recognise(wire: &[u8]) -> Result<Self> {
        if wire.is_empty() || wire.len() > MAX_MEMO_LEN {
            return Self::parse(wire);
        }
        let key = Key::of(wire);
        let set = key.set();
        // The memo is unavailable only while this thread is being torn down (or, which
        // nothing here does, when used again from within itself): then it is not used.
        let hit = MEMO.try_with(|memo| {
            let memo = memo.try_borrow().ok()?;
            memo[set]
                .iter()
                .flatten()
                .find(|slot| slot.key == key)
                .map(|slot| slot.name.clone())
        });
        match hit {
            Ok(Some(name)) => Ok(name),
            _ => Self::recognise_new(wire, key, set),
        }
    }

    /// [Self::recognise()] for a name not in the memo: parsed, and kept in the first slot
    /// of its set (the one there moves to the second, whose name is dropped).
    #[inline(never)]
    fn recognise_new(wire: &[u8], key: Key, set: usize) -> Result<Self> {
        let name = Self::parse(wire)?;
        let _ = MEMO.try_with(|memo| {
            if let Ok(mut memo) = memo.try_borrow_mut() {
                let ways = &mut memo[set];
                ways.rotate_right(1);
                ways[0] = Some(Slot {
                    key,
                    name: name.clone(),
                });
            }
        });
        Ok(name)
    }

    /// [Self::recognise()] without the memo.
    fn parse(wire: &[u8]) -> Result<Self> {
        let name = HeaderName::from_bytes(wire).or_err(InvalidHTTPHeader, "invalid header name")?;
        let titled = title_case::is_title_case(name.as_str().as_bytes(), wire);
        let framing = FramingName::of(&name);
        Ok(Self {
            name,
            titled,
            framing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &WireName, b: &WireName) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.titled, b.titled);
        assert_eq!(a.framing, b.framing);
    }

    #[test]
    fn a_hit_answers_as_a_miss() {
        for wire in [
            "Content-Length",
            "content-length",
            "X-Server",
            "x-server",
            "ETag",
            "Keep-Alive",
            "KEEP-ALIVE",
            "Host",
            "Transfer-Encoding",
            "A",
            "Access-Control-Allow-Credentials",
        ] {
            let parsed = WireName::parse(wire.as_bytes()).unwrap();
            let first = WireName::recognise(wire.as_bytes()).unwrap();
            let second = WireName::recognise(wire.as_bytes()).unwrap();
            same(&first, &parsed);
            same(&second, &parsed);
            assert_eq!(parsed.name.as_str(), wire.to_ascii_lowercase());
        }
        let cl = WireName::recognise(b"Content-Length").unwrap();
        assert!(cl.titled);
        assert_eq!(cl.framing, FramingName::ContentLength);
        let ka = WireName::recognise(b"keep-alive").unwrap();
        assert!(!ka.titled);
        assert_eq!(ka.framing, FramingName::KeepAlive);
        assert_eq!(
            WireName::recognise(b"X-Server").unwrap().framing,
            FramingName::Other
        );
    }

    #[test]
    fn cases_are_distinct_keys() {
        // In either order, each case keeps its own answer.
        for _ in 0..2 {
            let titled = WireName::recognise(b"X-Server").unwrap();
            let lower = WireName::recognise(b"x-server").unwrap();
            let upper = WireName::recognise(b"X-SERVER").unwrap();
            assert!(titled.titled);
            assert!(!lower.titled);
            assert!(!upper.titled);
            assert_eq!(titled.name, lower.name);
            assert_eq!(upper.name, lower.name);
        }
    }

    #[test]
    fn names_sharing_a_slot_stay_correct() {
        // Find more names of the same length in one set than it has slots, and take turns.
        let set_of = |wire: &str| Key::of(wire.as_bytes()).set();
        let names: Vec<String> = (0..10_000).map(|i| format!("X-Name-{i:05}")).collect();
        let first = &names[0];
        let same_set: Vec<&String> = names
            .iter()
            .filter(|n| set_of(n) == set_of(first))
            .take(WAYS + 1)
            .collect();
        assert_eq!(same_set.len(), WAYS + 1);
        for _ in 0..3 {
            for wire in same_set.iter().chain(same_set.iter().rev()) {
                let got = WireName::recognise(wire.as_bytes()).unwrap();
                assert_eq!(got.name.as_str(), wire.to_ascii_lowercase());
                assert!(got.titled);
            }
        }
    }

    #[test]
    fn long_names_bypass_the_memo() {
        let long = format!("X-{}", "Long-Name-".repeat(4));
        assert!(long.len() > MAX_MEMO_LEN);
        let kept = || MEMO.with(|m| m.borrow().iter().flatten().flatten().count());
        let before = kept();
        for _ in 0..2 {
            let got = WireName::recognise(long.as_bytes()).unwrap();
            assert_eq!(got.name.as_str(), long.to_ascii_lowercase());
            assert!(got.titled);
        }
        assert_eq!(before, kept());
        let longest = format!("X{}", "x".repeat(MAX_MEMO_LEN - 1));
        assert!(WireName::recognise(longest.as_bytes()).unwrap().titled);
    }

    #[test]
    fn keys_are_the_exact_bytes() {
        // Every length, a difference at every position: a different key.
        let base: Vec<u8> = (0..MAX_MEMO_LEN as u8).map(|i| b'a' + i % 26).collect();
        for len in 1..=MAX_MEMO_LEN {
            let name = &base[..len];
            assert!(Key::of(name) == Key::of(&name.to_vec()));
            for at in 0..len {
                let mut other = name.to_vec();
                other[at] = b'-';
                assert!(Key::of(name) != Key::of(&other), "{len} {at}");
                other[at] = name[at].to_ascii_uppercase();
                assert!(Key::of(name) != Key::of(&other), "{len} {at}");
            }
            if len > 1 {
                assert!(Key::of(name) != Key::of(&name[..len - 1]));
            }
        }
    }

    #[test]
    fn invalid_names_are_errors_every_time() {
        for _ in 0..2 {
            assert!(WireName::recognise(b"Bad Name").is_err());
            assert!(WireName::recognise(b"").is_err());
            assert!(WireName::recognise(b"X:Y").is_err());
        }
    }
}
