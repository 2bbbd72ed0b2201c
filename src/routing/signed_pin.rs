//! Signed pin values: `NAME.MAC`, where MAC is the unpadded base64url of the first 16
//! bytes of HMAC-SHA256(secret, NAME). With a route's `pin.secret` (nginx syntax:
//! `pinlb_pin_secret`), a pin header or cookie is honoured only when it carries a MAC
//! made with that secret, so that nobody who lacks the secret can pin traffic to one
//! server. The value depends only on the secret and the name: replicas sharing a secret
//! agree, and `pinlb --sign-pin NAME` prints it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use std::fmt;
use subtle::ConstantTimeEq;

/// Why a pin key or pin could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinError {
    /// The secret is shorter than [`PinKey::MIN_SECRET`] bytes.
    ShortSecret,
    /// The name is empty or has a byte that is not a cookie-octet
    /// (RFC 6265 section 4.1.1).
    BadName,
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinError::ShortSecret => "pin secret is too short",
            PinError::BadName => "pin name is empty or not a valid cookie value",
        })
    }
}

impl std::error::Error for PinError {}

/// RFC 6265 cookie-octet: printable ASCII except `"`, `,`, `;`, `\`, space.
fn cookie_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Signs and verifies pin values `NAME.MAC`, where MAC is the unpadded
/// base64url of the first 16 bytes of HMAC-SHA256(secret, NAME). The value
/// depends only on the secret and the name, so replicas sharing a secret
/// agree.
pub struct PinKey {
    key: hmac::Key,
}

impl fmt::Debug for PinKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinKey(..)")
    }
}

impl PinKey {
    /// Shortest accepted secret, in bytes (32 random bytes recommended).
    pub const MIN_SECRET: usize = 16;
    /// MAC bytes kept.
    pub const MAC_LEN: usize = 16;
    /// Length of the MAC text (base64url of 16 bytes, unpadded).
    pub const MAC_TEXT_LEN: usize = 22;

    /// A key from a secret of at least [`PinKey::MIN_SECRET`] bytes.
    pub fn new(secret: &[u8]) -> Result<PinKey, PinError> {
        if secret.len() < Self::MIN_SECRET {
            return Err(PinError::ShortSecret);
        }
        Ok(PinKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    fn mac(&self, name: &[u8]) -> [u8; 16] {
        let tag = hmac::sign(&self.key, name);
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..Self::MAC_LEN]);
        out
    }

    /// `NAME.MAC` for a name made of cookie-octets.
    pub fn sign(&self, name: &str) -> Result<String, PinError> {
        if name.is_empty() || !name.bytes().all(cookie_octet) {
            return Err(PinError::BadName);
        }
        let mut s = String::with_capacity(name.len() + 1 + Self::MAC_TEXT_LEN);
        s.push_str(name);
        s.push('.');
        URL_SAFE_NO_PAD.encode_string(self.mac(name.as_bytes()), &mut s);
        Ok(s)
    }

    /// Returns the name if `value` is a pin this key made; `None` for
    /// anything else (forged, truncated, padded, garbled, non-canonical
    /// base64). The MAC comparison is constant-time; what is learned from
    /// timing is only the (public) shape of the input. No allocation.
    pub fn verify<'a>(&self, value: &'a [u8]) -> Option<&'a str> {
        let dot = value.iter().rposition(|&c| c == b'.')?;
        let (name, mac_text) = (&value[..dot], &value[dot + 1..]);
        if name.is_empty() || !name.iter().all(|&c| cookie_octet(c)) {
            return None;
        }
        if mac_text.len() != Self::MAC_TEXT_LEN {
            return None;
        }
        let mut given = [0u8; 18];
        // Strict decoding: rejects padding and non-zero trailing bits, so
        // each MAC has exactly one accepted spelling.
        let n = URL_SAFE_NO_PAD.decode_slice(mac_text, &mut given).ok()?;
        if n != Self::MAC_LEN {
            return None;
        }
        let want = self.mac(name);
        if bool::from(want.ct_eq(&given[..Self::MAC_LEN])) {
            // cookie-octets are ASCII.
            std::str::from_utf8(name).ok()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_known_value() {
        // Computed with: printf 'app2' | openssl dgst -sha256 -hmac
        //   '0123456789abcdef0123456789abcdef' -binary | head -c 16
        //   | base64 | tr '+/' '-_' | tr -d '='
        let k = PinKey::new(b"0123456789abcdef0123456789abcdef").expect("key");
        let pin = k.sign("app2").expect("sign");
        assert_eq!(pin, "app2.GvJoQDy7T5WnzObwRtsvGw");
        assert_eq!(k.verify(pin.as_bytes()), Some("app2"));

        // Forged, truncated, re-padded, other key, other name.
        assert_eq!(k.verify(b"app2.GvJoQDy7T5WnzObwRtsvGx"), None);
        assert_eq!(k.verify(b"app2.GvJoQDy7T5WnzObwRtsvG"), None);
        assert_eq!(k.verify(b"app2.GvJoQDy7T5WnzObwRtsvGw=="), None);
        assert_eq!(k.verify(b"app3.GvJoQDy7T5WnzObwRtsvGw"), None);
        assert_eq!(k.verify(b"app2"), None);
        assert_eq!(k.verify(b".GvJoQDy7T5WnzObwRtsvGw"), None);
        assert_eq!(k.verify(b""), None);
        let other = PinKey::new(b"another secret, 32 bytes long!!!").expect("key");
        assert_eq!(other.verify(pin.as_bytes()), None);
        // Names with dots work (the MAC never contains one).
        let dotted = k.sign("eu.app2").expect("sign");
        assert_eq!(k.verify(dotted.as_bytes()), Some("eu.app2"));

        assert_eq!(PinKey::new(b"short").err(), Some(PinError::ShortSecret));
        assert_eq!(k.sign("").err(), Some(PinError::BadName));
        assert_eq!(k.sign("a b").err(), Some(PinError::BadName));
        assert_eq!(k.sign("a;b").err(), Some(PinError::BadName));
    }

    #[test]
    fn pin_rejects_non_canonical_base64() {
        let k = PinKey::new(b"0123456789abcdef0123456789abcdef").expect("key");
        // Last char 'w' = 0b110000: the low 4 bits are padding. 'x' sets one.
        // Changing only trailing bits must not verify.
        for last in ["x", "y", "z", "0"] {
            let v = format!("app2.GvJoQDy7T5WnzObwRtsvG{last}");
            assert_eq!(k.verify(v.as_bytes()), None, "{v}");
        }
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn verify_never_panics_and_rejects_garbage(v in proptest::collection::vec(any::<u8>(), 0..64)) {
                let k = PinKey::new(b"0123456789abcdef0123456789abcdef").expect("key");
                // A random value is a valid pin with probability 2^-128.
                prop_assert_eq!(k.verify(&v), None);
            }

            #[test]
            fn tampering_is_rejected(name in "[A-Za-z0-9_.-]{1,20}", i in any::<prop::sample::Index>(), b in any::<u8>()) {
                let k = PinKey::new(b"0123456789abcdef0123456789abcdef").expect("key");
                let pin = k.sign(&name).expect("valid name");
                prop_assert_eq!(k.verify(pin.as_bytes()), Some(name.as_str()));
                let mut bytes = pin.into_bytes();
                let i = i.index(bytes.len());
                prop_assume!(bytes[i] != b);
                bytes[i] = b;
                prop_assert_eq!(k.verify(&bytes), None);
                // Truncations too.
                for cut in 0..bytes.len() {
                    let _ = k.verify(&bytes[..cut]);
                }
            }
        }
    }
}
