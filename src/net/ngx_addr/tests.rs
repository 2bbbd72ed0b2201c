//! Tests of nginx's address text rules, as tables derived from its C code.

use super::*;

fn v4(s: &str) -> Option<String> {
    parse_ipv4(s.as_bytes()).map(|a| a.to_string())
}

fn v6(s: &str) -> Option<String> {
    parse_ipv6(s.as_bytes()).map(|a| a.to_string())
}

#[test]
fn ngx_inet_addr_table() {
    // Derived by reading ngx_inet_addr(): digits and dots only, three
    // dots, octet value <= 255, empty octets count as 0.
    let cases: &[(&str, Option<&str>)] = &[
        ("1.2.3.4", Some("1.2.3.4")),
        ("0.0.0.0", Some("0.0.0.0")),
        ("001.002.003.004", Some("1.2.3.4")),
        ("0000000000001.2.3.4", Some("1.2.3.4")),
        ("1..2.3", Some("1.0.2.3")),
        ("...", Some("0.0.0.0")),
        (".1.2.3", Some("0.1.2.3")),
        ("1.2.3.", Some("1.2.3.0")),
        ("255.255.255.254", Some("255.255.255.254")),
        ("255.255.255.255", None),
        ("256.1.1.1", None),
        ("1.2.3", None),
        ("1.2.3.4.5", None),
        ("1.2.3.4 ", None),
        (" 1.2.3.4", None),
        ("1.2.3.-4", None),
        ("0x1.2.3.4", None),
        ("", None),
    ];
    for (input, want) in cases {
        assert_eq!(v4(input).as_deref(), *want, "input {input:?}");
    }
}

#[test]
fn ngx_inet6_addr_table() {
    let cases: &[(&str, Option<&str>)] = &[
        ("::1", Some("::1")),
        ("::", Some("::")),
        ("1::", Some("1::")),
        ("1:2:3:4:5:6:7:8", Some("1:2:3:4:5:6:7:8")),
        ("2001:DB8::A", Some("2001:db8::a")),
        ("2001:db8:0:0:1:0:0:1", Some("2001:db8::1:0:0:1")),
        ("::ffff:1.2.3.4", Some("::ffff:1.2.3.4")),
        ("::1.2.3.4", Some("::102:304")),
        ("1:2:3:4:5:6:1.2.3.4", Some("1:2:3:4:5:6:102:304")),
        ("0001:02:3::", Some("1:2:3::")),
        // One leading colon is skipped by nginx.
        (":1:2:3:4:5:6:7:8", Some("1:2:3:4:5:6:7:8")),
        (":::1", None),
        ("1:2:3:4:5:6:7::", None),
        ("::1:2:3:4:5:6:7", Some("0:1:2:3:4:5:6:7")),
        ("::1:2:3:4:5:6:7:8", None),
        ("1:2:3:4:5:6:7", None),
        ("1:2:3:4:5:6:7:8:9", None),
        ("12345::", None),
        ("1::2::3", None),
        ("::ffff:255.255.255.255", None),
        ("::ffff:1.2.3", None),
        ("1:2:3:4:5:6:7:1.2.3.4", None),
        ("fe80::1%eth0", None),
        ("[::1]", None),
        ("g::", None),
        (":", None),
        ("", None),
        ("1.2.3.4", None),
    ];
    for (input, want) in cases {
        assert_eq!(v6(input).as_deref(), *want, "input {input:?}");
    }
}

#[test]
fn ngx_parse_addr_port_table() {
    let cases: &[(&str, Option<(&str, u16)>)] = &[
        ("1.2.3.4", Some(("1.2.3.4", 0))),
        ("1.2.3.4:80", Some(("1.2.3.4", 80))),
        ("1.2.3.4:080", Some(("1.2.3.4", 80))),
        ("1.2.3.4:0", None),
        ("1.2.3.4:65535", Some(("1.2.3.4", 65535))),
        ("1.2.3.4:65536", None),
        ("1.2.3.4:", None),
        ("1.2.3.4:80:90", None),
        ("::1", Some(("::1", 0))),
        ("[::1]", Some(("::1", 0))),
        ("[::1]:443", Some(("::1", 443))),
        ("[1.2.3.4]:443", Some(("1.2.3.4", 443))),
        ("[1.2.3.4]", Some(("1.2.3.4", 0))),
        ("[::1]443", None),
        ("[::1", None),
        ("[]", None),
        ("[]:80", None),
        ("::1:80", Some(("::1:80", 0))),
        ("unknown", None),
        ("", None),
        (":80", None),
    ];
    for (input, want) in cases {
        let got = parse_addr_port(input.as_bytes()).map(|(ip, port)| (ip.to_string(), port));
        let want = want.map(|(ip, port)| (ip.to_string(), port));
        assert_eq!(got, want, "input {input:?}");
    }
}

#[test]
fn ngx_inet6_ntop_table() {
    let cases: &[(&str, &str)] = &[
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:0:0:1::1", "2001:0:0:1::1"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
        ("::1.2.3.4", "::1.2.3.4"),
        ("::ffff", "::0.0.255.255"),
        ("::101", "::101"),
        ("::100", "::0.0.1.0"),
        ("::ffff:0:0", "::ffff:0.0.0.0"),
        ("fe80::1:2", "fe80::1:2"),
    ];
    for (input, want) in cases {
        let ip: Ipv6Addr = input.parse().expect("test address");
        assert_eq!(Ipv6Text(ip).to_string(), *want, "input {input}");
    }
}

#[test]
fn ip_port_text() {
    let mut s = String::new();
    write_ip_port(&mut s, "127.0.0.1".parse().expect("ip"), 8080).expect("fmt");
    assert_eq!(s, "127.0.0.1:8080");
    s.clear();
    write_ip_port(&mut s, "::1".parse().expect("ip"), 80).expect("fmt");
    assert_eq!(s, "[::1]:80");
}

#[test]
fn atoi_table() {
    assert_eq!(atoi(b"0"), Some(0));
    assert_eq!(atoi(b"0080"), Some(80));
    assert_eq!(atoi(b""), None);
    assert_eq!(atoi(b"+1"), None);
    assert_eq!(atoi(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(atoi(b"9223372036854775808"), None);
}

mod props {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_addr_port(&bytes);
            let _ = parse_ipv6(&bytes);
            let _ = parse_ipv4(&bytes);
        }

        #[test]
        fn never_panics_on_address_alphabet(s in "[0-9a-fA-F:.\\[\\]]{0,48}") {
            let _ = parse_addr_port(s.as_bytes());
        }

        #[test]
        fn std_v4_text_round_trips(a in any::<u32>().prop_filter("not INADDR_NONE", |a| *a != u32::MAX)) {
            let ip = Ipv4Addr::from(a);
            prop_assert_eq!(parse_ipv4(ip.to_string().as_bytes()), Some(ip));
        }

        #[test]
        fn std_v6_text_round_trips(a in any::<u128>()) {
            let ip = Ipv6Addr::from(a);
            // std prints ::ffff:255.255.255.255 which nginx rejects.
            prop_assume!(ip.to_ipv4_mapped() != Some(Ipv4Addr::BROADCAST));
            prop_assert_eq!(parse_ipv6(ip.to_string().as_bytes()), Some(ip));
        }

        #[test]
        fn nginx_v6_text_round_trips(a in any::<u128>(), small in any::<bool>()) {
            // Bias towards addresses with long zero runs and embedded IPv4.
            let a = if small { a & 0xffff_ffff_ffff } else { a };
            let ip = Ipv6Addr::from(a);
            let text = Ipv6Text(ip).to_string();
            let tail_v4_broadcast = text.ends_with("255.255.255.255");
            if !tail_v4_broadcast {
                prop_assert_eq!(parse_ipv6(text.as_bytes()), Some(ip), "text {}", text);
            }
        }
    }
}
