//! Title case of header names (`x-forwarded-for` -> `X-Forwarded-For`), eight bytes at a time.
//!
//! pinlb patch, used by `deferred_case.rs`: every header name read or added is checked
//! against its title case and every name written without a case map is written in it, so
//! both run word-wise rather than byte by byte. Header names are tokens (ASCII); `lower` is
//! always the lower-case form `http::HeaderName::as_str` gives.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// 0x80 in each byte of `x` that is zero, 0 in the others (exact, no false positives).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    !(((x & !HIGH).wrapping_add(!HIGH)) | x | !HIGH)
}

/// 0x80 in each byte of `x` that is an ASCII lower-case letter (bytes are below 0x80).
#[inline(always)]
fn lower_letters(x: u64) -> u64 {
    let at_least_a = (x | HIGH).wrapping_sub(ONES * u64::from(b'a')) & HIGH;
    let at_most_z = ((ONES * u64::from(b'z')) | HIGH).wrapping_sub(x) & HIGH;
    at_least_a & at_most_z
}

/// The bits that turn the 8-byte chunk `lower` into title case, given whether its first
/// byte starts a word; and whether the chunk's last byte is a `-` (so the next one starts one).
#[inline(always)]
fn title_bits(lower: u64, starts_word: bool) -> (u64, bool) {
    let dashes = zero_bytes(lower ^ (ONES * u64::from(b'-')));
    // A byte starts a word after a dash; little-endian, so the next byte is 8 bits up.
    let starts = (dashes << 8) | u64::from(starts_word) << 7;
    let flip = (starts & lower_letters(lower)) >> 2; // 0x80 -> 0x20, the case bit
    (flip, dashes >> 63 != 0)
}

/// One byte of `lower` in title case, and whether the next byte starts a word.
#[inline(always)]
fn title_byte(lower: u8, starts_word: bool) -> (u8, bool) {
    let titled = if starts_word {
        lower.to_ascii_uppercase()
    } else {
        lower
    };
    (titled, lower == b'-')
}

#[inline(always)]
pub(crate) fn word(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The bytes of `bytes` (shorter than 8) as a little-endian word, zero above them: at most
/// three loads instead of a loop over the bytes. Zero bytes are neither letters nor dashes,
/// so [title_bits] leaves them alone.
#[inline(always)]
pub(crate) fn short_word(bytes: &[u8]) -> u64 {
    debug_assert!(bytes.len() < 8);
    let len = bytes.len();
    let mut x = 0u64;
    let mut at = 0;
    if len & 4 != 0 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&bytes[..4]);
        x = u64::from(u32::from_le_bytes(w));
        at = 4;
    }
    if len & 2 != 0 {
        let mut w = [0u8; 2];
        w.copy_from_slice(&bytes[at..at + 2]);
        x |= u64::from(u16::from_le_bytes(w)) << (8 * at);
        at += 2;
    }
    if len & 1 != 0 {
        x |= u64::from(bytes[at]) << (8 * at);
    }
    x
}

/// Whether `wire` is `lower` in title case: upper case at the start and after each `-`.
pub(crate) fn is_title_case(lower: &[u8], wire: &[u8]) -> bool {
    let len = lower.len();
    if wire.len() != len {
        return false;
    }
    if len < 8 {
        let l = short_word(lower);
        let (flip, _) = title_bits(l, true);
        return short_word(wire) == l ^ flip;
    }
    let mut at = 0;
    let mut starts_word = true;
    loop {
        let l = word(lower, at);
        let (flip, next) = title_bits(l, starts_word);
        if word(wire, at) != l ^ flip {
            return false;
        }
        if at + 8 == len {
            return true;
        }
        // The last word may overlap the one before; a byte's case depends only on the
        // byte before it.
        at = (at + 8).min(len - 8);
        starts_word = if at % 8 == 0 {
            next
        } else {
            lower[at - 1] == b'-'
        };
    }
}

/// Writes `lower` in title case to `dst`, word by word; the last word of a name whose
/// length is not a multiple of 8 overlaps the one before, computed again from `lower`.
///
/// # Safety
///
/// `dst` must be valid for writes of `lower.len()` bytes.
#[inline]
pub(crate) unsafe fn write_title_case(lower: &[u8], dst: *mut u8) {
    let len = lower.len();
    if len < 8 {
        let l = short_word(lower);
        let (flip, _) = title_bits(l, true);
        let titled = (l ^ flip).to_le_bytes();
        // SAFETY: `len` < 8 bytes of `titled`, and the caller's guarantee for `dst`.
        unsafe { std::ptr::copy_nonoverlapping(titled.as_ptr(), dst, len) };
        return;
    }
    let mut at = 0;
    let mut starts_word = true;
    loop {
        let l = word(lower, at);
        let (flip, next) = title_bits(l, starts_word);
        // SAFETY: `at + 8 <= len`, and the caller's guarantee for `dst`.
        unsafe {
            dst.add(at)
                .cast::<u64>()
                .write_unaligned((l ^ flip).to_le())
        };
        if at + 8 == len {
            return;
        }
        at = (at + 8).min(len - 8);
        starts_word = if at % 8 == 0 {
            next
        } else {
            lower[at - 1] == b'-'
        };
    }
}

/// Longest piece of a name [title_case_into] writes at once.
pub(crate) const PIECE: usize = 64;

/// Writes `lower` (at most [PIECE] bytes) in title case to the front of `out`.
/// `starts_word` says whether `lower`'s first byte starts a word; the
/// result says whether the byte after `lower` does.
#[inline]
pub(crate) fn title_case_into(lower: &[u8], starts_word: bool, out: &mut [u8; PIECE]) -> bool {
    debug_assert!(lower.len() <= PIECE);
    let mut starts_word = starts_word;
    let whole = lower.len() / 8 * 8;
    for at in (0..whole).step_by(8) {
        let l = word(lower, at);
        let (flip, next) = title_bits(l, starts_word);
        out[at..at + 8].copy_from_slice(&(l ^ flip).to_le_bytes());
        starts_word = next;
    }
    for (out, &l) in out[whole..].iter_mut().zip(&lower[whole..]) {
        (*out, starts_word) = title_byte(l, starts_word);
    }
    starts_word
}

/// Calls `put` with consecutive pieces of `lower` (of any length) in title case: one piece
/// for names of up to [PIECE] bytes.
pub(crate) fn title_case_pieces(lower: &[u8], mut put: impl FnMut(&[u8])) {
    let mut out = [0u8; PIECE];
    let mut starts_word = true;
    for piece in lower.chunks(PIECE) {
        starts_word = title_case_into(piece, starts_word, &mut out);
        put(&out[..piece.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn title_case(lower: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        title_case_pieces(lower, |piece| out.extend_from_slice(piece));
        out
    }

    #[test]
    fn names_of_every_shape() {
        for (lower, titled) in [
            ("x-forwarded-for", "X-Forwarded-For"),
            ("etag", "Etag"),
            ("a", "A"),
            ("-", "-"),
            ("--x", "--X"),
            ("x-", "X-"),
            ("1-a-2-b", "1-A-2-B"),
            ("abcdefg-hijklmn", "Abcdefg-Hijklmn"),
            ("abcdefgh-ijklmno", "Abcdefgh-Ijklmno"),
            ("x-a-very-long-header-name", "X-A-Very-Long-Header-Name"),
            ("x!#$%&'*+.^_`|~09", "X!#$%&'*+.^_`|~09"),
            (
                "x-a-name-longer-than-one-piece-of-sixty-four-bytes-to-seessssss-at-64-x",
                "X-A-Name-Longer-Than-One-Piece-Of-Sixty-Four-Bytes-To-Seessssss-At-64-X",
            ),
        ] {
            let (lower, titled) = (lower.as_bytes(), titled.as_bytes());
            assert_eq!(title_case(lower), titled, "{lower:?}");
            assert!(is_title_case(lower, titled), "{lower:?}");
        }
        assert!(!is_title_case(b"etag", b"ETag"));
        assert!(!is_title_case(b"x-real-ip", b"X-Real-IP"));
        assert!(!is_title_case(b"x-lower", b"x-lower"));
        assert!(!is_title_case(b"host", b"Hos"));
    }

    /// Title case as defined: upper case at the start and after each `-`.
    fn naive_title_case(lower: &[u8]) -> Vec<u8> {
        let mut upper_next = true;
        lower
            .iter()
            .map(|&b| {
                let out = if upper_next {
                    b.to_ascii_uppercase()
                } else {
                    b
                };
                upper_next = b == b'-';
                out
            })
            .collect()
    }

    /// Generated names of every length up to a few pieces against the definition, from a
    /// fixed xorshift sequence so that a failure repeats on every run.
    #[test]
    fn agrees_with_the_byte_by_byte_definition() {
        const TOKEN: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+.^_`|~-";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..4096 {
            let len = 1 + (next() % 150) as usize;
            let lower: Vec<u8> = (0..len)
                .map(|_| TOKEN[(next() % TOKEN.len() as u64) as usize])
                .collect();
            let titled = naive_title_case(&lower);
            assert_eq!(title_case(&lower), titled, "{lower:?}");
            let mut written = vec![0u8; len];
            // SAFETY: `written` has `len` bytes.
            unsafe { write_title_case(&lower, written.as_mut_ptr()) };
            assert_eq!(written, titled, "{lower:?}");
            assert!(is_title_case(&lower, &titled), "{lower:?}");
            // Any other case of the same name is not title case.
            let flip = next();
            let other: Vec<u8> = lower
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if flip >> (i % 64) & 1 == 1 {
                        b.to_ascii_uppercase()
                    } else {
                        b
                    }
                })
                .collect();
            assert_eq!(is_title_case(&lower, &other), other == titled, "{other:?}");
        }
    }
}
