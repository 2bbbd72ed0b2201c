//! Tests of the path normaliser: nginx's cases as a table, properties, and two `#[ignore]`d
//! runs (against a real nginx, and a million random paths).

use super::*;
use proptest::prelude::*;

fn norm(raw: &str, merge: bool) -> Result<String, UriError> {
    normalize_path(raw.as_bytes(), merge).map(|c| String::from_utf8_lossy(&c).into_owned())
}

/// (input, merge_slashes on, merge_slashes off); `None` marks a 400. Derived from reading
/// ngx_http_parse_complex_uri; the `nginx_agreement` test checks the same table against
/// a real nginx.
pub(crate) const CASES: &[(&str, Option<&str>, Option<&str>)] = &[
    ("/", Some("/"), Some("/")),
    ("", Some("/"), Some("/")),
    ("/admin", Some("/admin"), Some("/admin")),
    ("//admin", Some("/admin"), Some("//admin")),
    ("///admin//x///", Some("/admin/x/"), Some("///admin//x///")),
    ("/./admin", Some("/admin"), Some("/admin")),
    ("/x/../admin", Some("/admin"), Some("/admin")),
    ("/x/./../admin", Some("/admin"), Some("/admin")),
    ("/%61dmin", Some("/admin"), Some("/admin")),
    ("/%2e%2e/admin", None, None),
    ("/x/%2e%2e/admin", Some("/admin"), Some("/admin")),
    ("/x/%2E./admin", Some("/admin"), Some("/admin")),
    ("/x/.%2e%2fadmin", Some("/admin"), Some("/admin")),
    ("/x%2f..%2fadmin", Some("/admin"), Some("/admin")),
    ("/x%2F%2Fy", Some("/x/y"), Some("/x//y")),
    ("/x//y", Some("/x/y"), Some("/x//y")),
    ("/x/y", Some("/x/y"), Some("/x/y")),
    ("/..", None, None),
    ("/../", None, None),
    ("/a/..", Some("/"), Some("/")),
    ("/a/../..", None, None),
    ("/a/b/..", Some("/a/"), Some("/a/")),
    ("/a/b/.", Some("/a/b/"), Some("/a/b/")),
    ("/a/.", Some("/a/"), Some("/a/")),
    ("/.", Some("/"), Some("/")),
    ("/a/.b", Some("/a/.b"), Some("/a/.b")),
    ("/a/..b", Some("/a/..b"), Some("/a/..b")),
    ("/a/...", Some("/a/..."), Some("/a/...")),
    ("/a/b../c", Some("/a/b../c"), Some("/a/b../c")),
    ("//..", None, Some("/")),
    ("/a//..", Some("/"), Some("/a/")),
    ("/a//../b", Some("/b"), Some("/a/b")),
    ("/a/b//../..", Some("/"), Some("/a/")),
    ("/a?b", Some("/a"), Some("/a")),
    ("/a/..?b", Some("/"), Some("/")),
    ("/a/.?b", Some("/a/"), Some("/a/")),
    ("/a/..#b", Some("/"), Some("/")),
    ("/a%3Fb", Some("/a?b"), Some("/a?b")),
    ("/a%3fb?c", Some("/a?b"), Some("/a?b")),
    ("/a%23b", Some("/a#b"), Some("/a#b")),
    ("/a#b", Some("/a"), Some("/a")),
    ("/a%2525", Some("/a%25"), Some("/a%25")),
    ("/a%25%32%65", Some("/a%2e"), Some("/a%2e")),
    ("/%25/..", Some("/"), Some("/")),
    ("/a%00", None, None),
    ("/a%0a", Some("/a\n"), Some("/a\n")),
    ("/a%", None, None),
    ("/a%4", None, None),
    ("/a%4g", None, None),
    ("/a%g4", None, None),
    ("/a%?x", None, None),
    ("/a+b", Some("/a+b"), Some("/a+b")),
    ("/a%2bb", Some("/a+b"), Some("/a+b")),
    ("/a%20b", Some("/a b"), Some("/a b")),
    ("/a\\..\\b", Some("/a\\..\\b"), Some("/a\\..\\b")),
    ("/a;/../b", Some("/b"), Some("/b")),
    ("/a/..;/b", Some("/a/..;/b"), Some("/a/..;/b")),
    ("/%c3%a9", Some("/\u{e9}"), Some("/\u{e9}")),
    ("/.%2e", None, None),
    ("/a/%2e", Some("/a/"), Some("/a/")),
    ("/a/%2e%2e", Some("/"), Some("/")),
    ("/a/.%3F", Some("/a/.?"), Some("/a/.?")),
    ("?x", Some("/"), Some("/")),
];

#[test]
fn table() {
    for (raw, on, off) in CASES {
        for (merge, want) in [(true, on), (false, off)] {
            let got = norm(raw, merge);
            match want {
                Some(w) => assert_eq!(got.as_deref(), Ok(*w), "{raw:?} merge={merge}"),
                None => assert!(got.is_err(), "{raw:?} merge={merge}: {got:?}"),
            }
        }
    }
}

#[test]
fn error_kinds() {
    assert_eq!(normalize_path(b"admin", true), Err(UriError::NotAbsolute));
    assert_eq!(
        normalize_path(b"%2fadmin", true),
        Err(UriError::NotAbsolute)
    );
    assert_eq!(normalize_path(b"#x", true), Err(UriError::NotAbsolute));
    assert_eq!(
        normalize_path(b"/a b", true),
        Err(UriError::ControlByte { at: 2 })
    );
    assert_eq!(
        normalize_path(b"/a%41\x7f", true),
        Err(UriError::ControlByte { at: 5 })
    );
    assert_eq!(
        normalize_path(b"/a%4", true),
        Err(UriError::BadPercent { at: 2 })
    );
    assert_eq!(
        normalize_path(b"/a%00", true),
        Err(UriError::EncodedNul { at: 2 })
    );
    assert_eq!(
        normalize_path(b"/a/../..", true),
        Err(UriError::AboveRoot { at: 8 })
    );
    // Bytes after the query are not examined.
    assert_eq!(normalize_path(b"/a?\x01", true).as_deref(), Ok(&b"/a"[..]));
    assert_eq!(
        UriError::AboveRoot { at: 3 }.to_string(),
        "\"..\" above the root in request path at byte 3"
    );
}

#[test]
fn fast_path_borrows() {
    for raw in [
        "/", "/a/b.c", "/a/.b", "/a/b..", "/a?x/../", "/a/b#/..", "/a//b",
    ] {
        let merge = raw != "/a//b";
        let out = normalize_path(raw.as_bytes(), merge);
        assert!(matches!(out, Ok(Cow::Borrowed(_))), "{raw}");
    }
    assert!(matches!(normalize_path(b"/a//b", true), Ok(Cow::Owned(_))));
    assert!(matches!(
        normalize_path(b"/a/./b", false),
        Ok(Cow::Owned(_))
    ));
}

#[test]
fn quoted() {
    assert!(was_quoted(b"/a%20"));
    assert!(!was_quoted(b"/a?%20"));
    assert!(!was_quoted(b"/a#%20"));
    assert!(!was_quoted(b"/a b"));
}

#[test]
fn encoding() {
    let mut out = Vec::new();
    encode_path(
        b"/a b/\"#%<>?\\^`{|}\x7f\x00\xe9'[];+=:@!$&()*,~-._",
        &mut out,
    );
    assert_eq!(
        out,
        b"/a%20b/%22%23%25%3C%3E%3F%5C%5E%60%7B%7C%7D%7F%00%E9'[];+=:@!$&()*,~-._"
    );
    // Every byte that is escaped is exactly the set nginx documents.
    let escaped: Vec<u8> = (0..=255u8).filter(|&b| needs_escape(b)).collect();
    let mut want: Vec<u8> = (0..=0x20).chain(0x7f..=0xff).collect();
    want.extend_from_slice(b"\"#%<>?\\^`{|}");
    want.sort_unstable();
    assert_eq!(escaped, want);
}

/// Paths made of the bytes the normaliser treats specially, mixed with a few ordinary
/// ones, so random cases hit the interesting transitions.
pub(crate) fn interesting_path() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(&b"/"[..]),
        Just(&b"."[..]),
        Just(&b".."[..]),
        Just(&b"a"[..]),
        Just(&b"%2e"[..]),
        Just(&b"%2E"[..]),
        Just(&b"%2f"[..]),
        Just(&b"%25"[..]),
        Just(&b"%3F"[..]),
        Just(&b"%23"[..]),
        Just(&b"%"[..]),
        Just(&b"%4"[..]),
        Just(&b"%00"[..]),
        Just(&b"?"[..]),
        Just(&b"#"[..]),
        Just(&b"+"[..]),
        Just(&b"\\"[..]),
        Just(&b"\xc3"[..]),
    ];
    proptest::collection::vec(token, 0..12).prop_map(|ts| {
        let mut v = vec![b'/'];
        for t in ts {
            v.extend_from_slice(t);
        }
        v
    })
}

fn path_end(raw: &[u8]) -> usize {
    raw.iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(raw.len())
}

fn check_invariants(raw: &[u8], merge: bool) {
    let Ok(out) = normalize_path(raw, merge) else {
        return;
    };
    assert!(out.starts_with(b"/"), "{raw:?} -> {out:?}");
    if merge {
        assert!(!out.windows(2).any(|w| w == b"//"), "{raw:?} -> {out:?}");
    }
    for seg in out.split(|&b| b == b'/').skip(1) {
        assert!(seg != b"." && seg != b"..", "{raw:?} -> {out:?}");
    }
    // The fast path and the full parser agree, and borrowing happens exactly when the
    // path (before `?`/`#`) comes back unchanged.
    let slow = normalize_slow(raw, merge).map(Cow::into_owned);
    assert_eq!(Ok(out.to_vec()), slow, "{raw:?}");
    let unchanged = *out == raw[..path_end(raw)];
    assert_eq!(
        matches!(out, Cow::Borrowed(_)),
        unchanged || raw.is_empty(),
        "{raw:?}"
    );
    // Idempotent, unless a decoded byte means something else when read raw: a `%`
    // (would be decoded again), `?`/`#` (would end the path) or a control byte or
    // space (rejected when raw).
    if !out
        .iter()
        .any(|&b| matches!(CLASS[b as usize], PERCENT | END | CONTROL))
    {
        let again = normalize_path(&out, merge);
        assert_eq!(again.as_deref(), Ok(&out[..]), "{raw:?}");
    }
}

proptest! {
    #[test]
    fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64), merge: bool) {
        let _ = normalize_path(&raw, merge);
        let mut out = Vec::new();
        encode_path(&raw, &mut out);
    }

    #[test]
    fn invariants(raw in interesting_path(), merge: bool) {
        check_invariants(&raw, merge);
    }

    #[test]
    fn invariants_any_bytes(
        tail in proptest::collection::vec(any::<u8>(), 0..40), merge: bool
    ) {
        let mut raw = vec![b'/'];
        raw.extend_from_slice(&tail);
        check_invariants(&raw, merge);
    }

    #[test]
    fn encode_then_normalize_round_trips(raw in interesting_path(), merge: bool) {
        // What nginx sends upstream normalises, on the upstream, to the same path
        // (unless it contains a decoded `%`, `?` or `#`, which a second pass would
        // read differently - the `%2525` case).
        if let Ok(out) = normalize_path(&raw, merge) {
            let mut enc = Vec::new();
            encode_path(&out, &mut enc);
            if !out.contains(&b'%') {
                prop_assert_eq!(normalize_path(&enc, merge).map(Cow::into_owned), Ok(out.to_vec()));
            }
        }
    }
}

/// Compares `normalize_path` and `encode_path` with a real nginx on loopback over the
/// table above and generated paths: `cargo test -- --ignored nginx_agreement`.
/// `$uri` is echoed by `return 200 "$uri"`; the proxy_pass encoding is seen as the
/// `$request_uri` of a second nginx server behind `proxy_pass http://../q/`.
#[test]
#[ignore]
fn nginx_agreement() {
    use crate::nginx_harness::{Nginx, Rng};
    let ngx = Nginx::start(
        r#"
        server { listen 127.0.0.1:{port}; merge_slashes on;
                 location / { return 200 "$uri"; } }
        server { listen 127.0.0.1:{port1}; merge_slashes off;
                 location / { return 200 "$uri"; } }
        server { listen 127.0.0.1:{port2};
                 location /p/ { proxy_pass http://127.0.0.1:{port3}/q/; } }
        server { listen 127.0.0.1:{port3};
                 location / { return 200 "$request_uri"; } }
        "#,
    );

    const TOKENS: &[&[u8]] = &[
        b"/",
        b"/",
        b"//",
        b".",
        b"..",
        b"a",
        b"b",
        b"%2e",
        b"%2E",
        b"%2f",
        b"%2F",
        b"%25",
        b"%3F",
        b"%3f",
        b"%23",
        b"%00",
        b"%",
        b"%4",
        b"%zz",
        b"%41",
        b"%20",
        b"%0a",
        b"%c3%a9",
        b"%2b",
        b"+",
        b";",
        b"\\",
        b"~",
        b"\xc3\xa9",
        b"?",
        b"#",
        b"'",
        b"%22",
        b"%7B",
        b"[",
        b":",
        b"@",
    ];
    let mut inputs: Vec<Vec<u8>> = CASES.iter().map(|c| c.0.as_bytes().to_vec()).collect();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..600 {
        let mut p = vec![b'/'];
        for _ in 0..rng.below(10) {
            p.extend_from_slice(TOKENS[rng.below(TOKENS.len() as u64) as usize]);
        }
        inputs.push(p);
    }

    let (mut total, mut agree, mut rejected, mut proxied) = (0, 0, 0, 0);
    let mut disagreements = Vec::new();
    for raw in &inputs {
        // nginx only takes an empty path or `?` first in absolute form.
        let target = if raw.first() == Some(&b'/') {
            raw.clone()
        } else {
            [&b"http://t"[..], raw].concat()
        };
        for (port, merge) in [(ngx.port, true), (ngx.port + 1, false)] {
            let (status, body) = ngx.get(port, &target);
            let nginx = if status == 200 { Ok(body) } else { Err(status) };
            rejected += usize::from(status == 400);
            let ours = normalize_path(raw, merge)
                .map(Cow::into_owned)
                .map_err(|_| 400);
            total += 1;
            if nginx == ours {
                agree += 1;
            } else {
                disagreements.push(format!(
                    "{:?} merge={merge}: nginx {:?} ours {:?}",
                    String::from_utf8_lossy(raw),
                    nginx.map(|b| String::from_utf8_lossy(&b).into_owned()),
                    ours.map(|b| String::from_utf8_lossy(&b).into_owned()),
                ));
            }
        }
        // proxy_pass with a URI part: `/p/` is replaced by `/q/` and the rest is
        // re-encoded when the client's path was quoted.
        if raw.contains(&b'?') || raw.contains(&b'#') {
            continue;
        }
        let target = [&b"/p/"[..], raw].concat();
        let Ok(norm) = normalize_path(&target, true) else {
            continue;
        };
        let Some(rest) = norm.strip_prefix(b"/p/") else {
            continue;
        };
        let mut want = b"/q/".to_vec();
        if was_quoted(&target) {
            encode_path(rest, &mut want);
        } else {
            want.extend_from_slice(rest);
        }
        let (status, body) = ngx.get(ngx.port + 2, &target);
        total += 1;
        proxied += 1;
        if status == 200 && body == want {
            agree += 1;
        } else {
            disagreements.push(format!(
                "proxy {:?}: nginx {status} {:?} ours {:?}",
                String::from_utf8_lossy(&target),
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(&want),
            ));
        }
    }
    println!(
        "nginx agreement: {agree}/{total} requests ({} paths; {rejected} answered 400; \
         {proxied} through proxy_pass)",
        inputs.len()
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// About a million random inputs, outside the normal test run:
/// `cargo test --lib -- --ignored million_random_paths`.
#[test]
#[ignore]
fn million_random_paths() {
    // xorshift64*: deterministic, no dependency.
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    const ALPHABET: &[u8] = b"/./.%%2eE5fF0a?#+\\\x00\x7f\xc3 ";
    let mut raw = Vec::with_capacity(64);
    for case in 0..1_000_000u32 {
        raw.clear();
        raw.push(b'/');
        let len = (next() % 48) as usize;
        for _ in 0..len {
            let r = next();
            raw.push(if r & 0xf000 == 0 {
                (r >> 16) as u8
            } else {
                ALPHABET[(r % ALPHABET.len() as u64) as usize]
            });
        }
        check_invariants(&raw, case % 2 == 0);
    }
}
