//! Tests of `geo` tables and allow lists.

use super::*;

fn line(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn lines(s: &str) -> Vec<Vec<String>> {
    s.split(';').map(line).filter(|l| !l.is_empty()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

#[test]
fn longest_prefix_wins() {
    let (g, w) = Geo::from_lines(&lines(
        "default zz; 10.0.0.0/8 ten; 10.1.0.0/16 ten-one; 10.1.2.3 host;
         2001:db8::/32 doc6; 2001:db8:1::/48 doc6-1; 127.0.0.1 lo",
    ))
    .expect("valid");
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(g.lookup(ip("10.9.9.9")), "ten");
    assert_eq!(g.lookup(ip("10.1.9.9")), "ten-one");
    assert_eq!(g.lookup(ip("10.1.2.3")), "host");
    assert_eq!(g.lookup(ip("11.0.0.0")), "zz");
    assert_eq!(g.lookup(ip("2001:db8:2::1")), "doc6");
    assert_eq!(g.lookup(ip("2001:db8:1::1")), "doc6-1");
    assert_eq!(g.lookup(ip("2001:db9::1")), "zz");
    assert_eq!(g.lookup(ip("::ffff:10.1.2.3")), "host");
    assert_eq!(g.lookup(ip("::ffff:127.0.0.1")), "lo");
}

#[test]
fn no_default_means_empty() {
    let (g, _) = Geo::from_lines(&lines("10.0.0.0/8 ten")).expect("valid");
    assert_eq!(g.lookup(ip("1.1.1.1")), "");
    assert_eq!(g.lookup(ip("::1")), "");
}

#[test]
fn zero_prefix_is_the_ipv4_default_only() {
    let (g, w) = Geo::from_lines(&lines("default d; 0.0.0.0/0 four")).expect("valid");
    assert_eq!(
        w,
        vec!["duplicate network \"0.0.0.0/0\", value: \"four\", old value: \"d\"".to_string()]
    );
    assert_eq!(g.lookup(ip("1.1.1.1")), "four");
    assert_eq!(g.lookup(ip("::1")), "d");
}

#[test]
fn warnings_and_delete() {
    let (g, w) = Geo::from_lines(&lines(
        "10.0.0.0/8 a; 10.1.1.1/8 b; delete 10.0.0.0/8; delete 192.0.2.0/24; 10.1.0.0/16 c",
    ))
    .expect("valid");
    assert_eq!(
        w,
        vec![
            "low address bits of 10.1.1.1/8 are meaningless".to_string(),
            "duplicate network \"10.1.1.1/8\", value: \"b\", old value: \"a\"".to_string(),
            "no network \"192.0.2.0/24\" to delete".to_string(),
        ]
    );
    assert_eq!(g.lookup(ip("10.2.0.0")), "");
    assert_eq!(g.lookup(ip("10.1.0.1")), "c");
}

#[test]
fn duplicate_default_warns_per_family() {
    let (g, w) = Geo::from_lines(&lines("default a; default b")).expect("valid");
    let want = "duplicate network \"default\", value: \"b\", old value: \"a\"".to_string();
    assert_eq!(w, vec![want.clone(), want]);
    assert_eq!(g.lookup(ip("1.1.1.1")), "b");
}

#[test]
fn broadcast_is_special_cased() {
    let (g, _) = Geo::from_lines(&lines("default d; 255.255.255.255 bcast")).expect("valid");
    assert_eq!(g.lookup(ip("255.255.255.255")), "bcast");
    // ... and is what an unparseable source variable looks up.
    assert_eq!(g.lookup_source(Some(b"garbage"), &[]), "bcast");
    assert_eq!(g.lookup_source(None, &[]), "bcast");
    assert_eq!(g.lookup_source(Some(b"1.2.3.4"), &[]), "d");
    // A port is not allowed in the source value (ngx_parse_addr).
    assert_eq!(g.lookup_source(Some(b"1.2.3.4:80"), &[]), "bcast");
    assert_eq!(g.lookup_client(ClientAddr::Unix, &[]), "bcast");
}

#[test]
fn errors() {
    let e = |s: &str| {
        GeoBuilder::new()
            .add_line(&line(s))
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        e("10.0.0.0/33 x"),
        Err("invalid network \"10.0.0.0/33\"".to_string())
    );
    assert_eq!(
        e("default"),
        Err("invalid number of the geo parameters".to_string())
    );
    assert_eq!(
        e("a b c"),
        Err("invalid number of the geo parameters".to_string())
    );
    assert_eq!(e("proxy nope"), Err("invalid network \"nope\"".to_string()));
    assert_eq!(
        e("ranges"),
        Err("\"ranges\" in geo is not supported".to_string())
    );
    assert!(e("include x").is_err());
    assert_eq!(e("volatile"), Ok(()));
    assert_eq!(e("proxy_recursive"), Ok(()));
}

#[test]
fn header_args() {
    let a = |s: &str| parse_geo_header(&line(s));
    assert_eq!(
        a("$geo"),
        Ok(GeoHeader {
            source: None,
            variable: "geo".to_string()
        })
    );
    assert_eq!(
        a("$arg_ip $geo"),
        Ok(GeoHeader {
            source: Some("arg_ip".to_string()),
            variable: "geo".to_string()
        })
    );
    assert_eq!(
        a("geo").map_err(|e| e.to_string()),
        Err("invalid variable name \"geo\"".to_string())
    );
    assert_eq!(
        a("src $geo").map_err(|e| e.to_string()),
        Err("invalid variable name \"src\"".to_string())
    );
}

#[test]
fn proxy_walks_x_forwarded_for() {
    let (g, _) = Geo::from_lines(&lines(
        "default d; proxy 127.0.0.1; proxy 10.0.0.0/8; 192.0.2.0/24 doc; 10.0.0.0/8 ten",
    ))
    .expect("valid");
    let peer = ClientAddr::ip(ip("127.0.0.1"), 1);
    assert_eq!(g.lookup_client(peer, &[b"192.0.2.1"]), "doc");
    assert_eq!(g.lookup_client(peer, &[b"192.0.2.1, 10.0.0.1"]), "ten");
    assert_eq!(g.lookup_client(peer, &[]), "d");
    let untrusted = ClientAddr::ip(ip("198.51.100.1"), 1);
    assert_eq!(g.lookup_client(untrusted, &[b"192.0.2.1"]), "d");

    let (g, _) = Geo::from_lines(&lines(
        "default d; proxy 127.0.0.1; proxy 10.0.0.0/8; proxy_recursive; 192.0.2.0/24 doc; 10.0.0.0/8 ten",
    ))
    .expect("valid");
    assert_eq!(g.lookup_client(peer, &[b"192.0.2.1, 10.0.0.1"]), "doc");
    assert!(g.proxy_recursive());
}

#[test]
fn include_with_loader() {
    let mut b = GeoBuilder::new();
    let mut loader = |name: &str| -> Result<Vec<Vec<String>>, String> {
        match name {
            "nets.conf" => Ok(lines("10.0.0.0/8 ten; include more.conf")),
            "more.conf" => Ok(lines("192.0.2.0/24 doc")),
            "loop.conf" => Ok(lines("include loop.conf")),
            other => Err(format!("open() \"{other}\" failed")),
        }
    };
    b.add_line_with_include(&line("include nets.conf"), &mut loader)
        .expect("ok");
    assert_eq!(
        b.add_line_with_include(&line("include missing.conf"), &mut loader)
            .map_err(|e| e.to_string()),
        Err("open() \"missing.conf\" failed".to_string())
    );
    assert_eq!(
        b.add_line_with_include(&line("include loop.conf"), &mut loader),
        Err(GeoError::IncludeDepth)
    );
    let g = b.build();
    assert_eq!(g.lookup(ip("10.1.1.1")), "ten");
    assert_eq!(g.lookup(ip("192.0.2.9")), "doc");
}

#[test]
fn allow_list() {
    let (a, w) = AllowList::from_cidrs(&["127.0.0.1", "10.0.0.0/8", "2001:db8::/32", "10.0.0.0/8"])
        .expect("valid");
    assert!(w.is_empty());
    assert_eq!(a.len(), 3);
    assert!(a.allows(ip("127.0.0.1")));
    assert!(a.allows(ip("::ffff:127.0.0.1")));
    assert!(a.allows(ip("10.200.0.1")));
    assert!(a.allows(ip("2001:db8::5")));
    assert!(!a.allows(ip("127.0.0.2")));
    assert!(!a.allows(ip("::1")));
    assert!(!AllowList::new().allows(ip("127.0.0.1")));
    assert!(AllowList::from_cidrs(&["bogus"]).is_err());
}

mod props {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn builder_never_panics(words in proptest::collection::vec(proptest::collection::vec("[a-z0-9:./$]{0,12}", 0..4), 0..12)) {
            let mut b = GeoBuilder::new();
            for w in &words {
                let _ = b.add_line(w);
            }
            let g = b.build();
            let _ = g.lookup(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
    }
}
