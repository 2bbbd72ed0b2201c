//! Header lines written into a `BytesMut` with room made once and straight copies.
//!
//! pinlb patch. Writing a head through `BufMut` copies each name, `": "`, value and CRLF
//! with its own capacity check and a `memcpy` call for a few bytes, and a title-cased name
//! goes through a buffer on the stack first. Here the room for each line is checked once,
//! short pieces are copied with a couple of word loads and stores, and names are title-cased
//! straight into the buffer.

use crate::title_case::write_title_case;
use bytes::BytesMut;
use std::ptr;

/// Copies `src` to `dst`: up to 16 bytes with two (overlapping) loads and stores, longer
/// ones with `copy_nonoverlapping`.
///
/// # Safety
///
/// `dst` must be valid for writes of `src.len()` bytes and not overlap `src`.
#[inline(always)]
unsafe fn copy_short(src: &[u8], dst: *mut u8) {
    let len = src.len();
    let s = src.as_ptr();
    // SAFETY: every load is within `src` and every store within `dst[..len]`.
    unsafe {
        if len > 16 {
            ptr::copy_nonoverlapping(s, dst, len);
        } else if len >= 8 {
            let a = s.cast::<u64>().read_unaligned();
            let b = s.add(len - 8).cast::<u64>().read_unaligned();
            dst.cast::<u64>().write_unaligned(a);
            dst.add(len - 8).cast::<u64>().write_unaligned(b);
        } else if len >= 4 {
            let a = s.cast::<u32>().read_unaligned();
            let b = s.add(len - 4).cast::<u32>().read_unaligned();
            dst.cast::<u32>().write_unaligned(a);
            dst.add(len - 4).cast::<u32>().write_unaligned(b);
        } else if len >= 2 {
            let a = s.cast::<u16>().read_unaligned();
            let b = s.add(len - 2).cast::<u16>().read_unaligned();
            dst.cast::<u16>().write_unaligned(a);
            dst.add(len - 2).cast::<u16>().write_unaligned(b);
        } else if len == 1 {
            *dst = *s;
        }
    }
}

/// How a header line's name is written.
pub(crate) enum Name<'a> {
    /// These bytes as they are.
    AsIs(&'a [u8]),
    /// These lower-case bytes (an `http::HeaderName`) in title case.
    Titled(&'a [u8]),
}

impl Name<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        match self {
            Name::AsIs(name) | Name::Titled(name) => name.len(),
        }
    }
}

/// Appends the line `name: value\r\n` to `buf`.
#[inline]
pub(crate) fn put_line(buf: &mut BytesMut, name: Name<'_>, value: &[u8]) {
    let name_len = name.len();
    let len = name_len + value.len() + 4;
    buf.reserve(len);
    let start = buf.len();
    let dst = buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    // SAFETY: `reserve` made room for `len` bytes at `dst`, and exactly `len` bytes
    // (name, ": ", value, CRLF) are written there before the length is set.
    unsafe {
        match name {
            Name::AsIs(name) => copy_short(name, dst),
            Name::Titled(lower) => write_title_case(lower, dst),
        }
        let dst = dst.add(name_len);
        dst.cast::<[u8; 2]>().write_unaligned(*b": ");
        let dst = dst.add(2);
        copy_short(value, dst);
        dst.add(value.len())
            .cast::<[u8; 2]>()
            .write_unaligned(*b"\r\n");
        buf.set_len(start + len);
    }
}

/// Appends `bytes` to `buf` (room is made if needed).
#[inline]
pub(crate) fn put(buf: &mut BytesMut, bytes: &[u8]) {
    buf.reserve(bytes.len());
    let start = buf.len();
    let dst = buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    // SAFETY: `reserve` made room for `bytes.len()` bytes at `dst`, all written before the
    // length is set.
    unsafe {
        copy_short(bytes, dst);
        buf.set_len(start + bytes.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_every_length() {
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for name_len in 0..40 {
            for value_len in 0..40 {
                let (name, value) = (&text[..name_len], &text[..value_len]);
                let mut buf = BytesMut::new();
                put(&mut buf, b"<");
                put_line(&mut buf, Name::AsIs(name), value);
                put_line(&mut buf, Name::Titled(name), value);
                let mut expected = b"<".to_vec();
                for n in [name.to_vec(), {
                    let mut t = name.to_vec();
                    if let Some(first) = t.first_mut() {
                        first.make_ascii_uppercase();
                    }
                    t
                }] {
                    expected.extend_from_slice(&n);
                    expected.extend_from_slice(b": ");
                    expected.extend_from_slice(value);
                    expected.extend_from_slice(b"\r\n");
                }
                assert_eq!(&buf[..], &expected[..], "{name_len} {value_len}");
            }
        }
    }
}
