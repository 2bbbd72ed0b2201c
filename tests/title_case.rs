//! The vendored pingora-http title-case functions: their own unit tests (vendored crates
//! are not members of the workspace, so the module is included here) and generated names.

#[allow(dead_code)]
#[path = "../vendor/pingora-http/src/title_case.rs"]
mod title_case;

use proptest::prelude::*;

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

proptest! {
    #[test]
    fn agrees_with_the_byte_by_byte_definition(lower in "[a-z0-9!#$%&'*+.^_`|~-]{1,150}", flip in any::<u64>()) {
        let lower = lower.as_bytes();
        let titled = naive_title_case(lower);
        let mut written = Vec::new();
        title_case::title_case_pieces(lower, |piece| written.extend_from_slice(piece));
        prop_assert_eq!(&written, &titled);
        prop_assert!(title_case::is_title_case(lower, &titled));
        // Any other case of the same name is not title case.
        let other: Vec<u8> = lower
            .iter()
            .enumerate()
            .map(|(i, &b)| if flip >> (i % 64) & 1 == 1 { b.to_ascii_uppercase() } else { b })
            .collect();
        prop_assert_eq!(title_case::is_title_case(lower, &other), other == titled);
    }
}
