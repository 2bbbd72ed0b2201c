//! Tokenizing, parsing and expanding variables.

use super::*;
use crate::config::{MapKey, MapVar};
use pingora::http::RequestHeader;
use request_info::write_decimal;

fn info(req: &RequestHeader) -> RequestInfo<'_> {
    RequestInfo {
        req,
        uri: None,
        client_ip: Some("10.0.0.7".parse().unwrap()),
        conn: None,
        tls: None,
        server_port: Some(8080),
        server_name: "",
        proxy_host: "web",
        maps: &[],
    }
}

fn expand(template: &str, req: &RequestHeader) -> String {
    let mut out = Vec::new();
    Template::parse(template, &[])
        .unwrap()
        .expand(&info(req), &mut out);
    String::from_utf8(out).unwrap()
}

fn get(path: &[u8], headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", path, None).unwrap();
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).unwrap();
    }
    r
}

#[test]
fn only_a_lone_scheme_is_a_fixed_string() {
    let req = get(b"/", &[]);
    let mut i = info(&req);
    let scheme = Template::parse("$scheme", &[]).unwrap();
    assert_eq!(scheme.as_static(&i), Some("http"));
    i.tls = Some(&crate::variables::TlsConn::UNKNOWN);
    assert_eq!(scheme.as_static(&i), Some("https"));
    let url = Template::parse("$scheme://$host", &[]).unwrap();
    assert_eq!(url.as_static(&i), None);
}

#[test]
fn a_lone_variable_other_than_a_map_is_written_directly() {
    let lone = Template::parse("$remote_addr", &[]).unwrap();
    assert_eq!(lone.as_var(), Some(&Var::RemoteAddr));
    for text in ["$remote_addr:80", "x$host", "$pin", ""] {
        let t = Template::parse(text, &["pin".to_string()]).unwrap();
        assert_eq!(t.as_var(), None, "{text}");
    }
}

#[test]
fn ip_addresses_are_written_as_fmt_would() {
    for ip in [
        "0.0.0.0",
        "10.0.0.7",
        "192.168.100.255",
        "255.255.255.255",
        "1.20.3.99",
        "100.9.10.1",
        "::1",
        "2001:db8::7",
    ] {
        let mut out = Vec::new();
        write_ip(ip.parse().unwrap(), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), ip);
    }
    let mut port = Vec::new();
    write_decimal(65535, &mut port);
    assert_eq!(port, b"65535");
}

#[test]
fn forwarded_for_appends_the_client() {
    assert_eq!(
        expand("$proxy_add_x_forwarded_for", &get(b"/", &[])),
        "10.0.0.7"
    );
    let r = get(b"/", &[("X-Forwarded-For", "1.2.3.4")]);
    assert_eq!(
        expand("$proxy_add_x_forwarded_for", &r),
        "1.2.3.4, 10.0.0.7"
    );
}

#[test]
fn host_is_lowercased_without_port() {
    let r = get(b"/", &[("Host", "Shop.Example:8080")]);
    assert_eq!(expand("$host", &r), "shop.example");
    assert_eq!(expand("$http_host", &r), "Shop.Example:8080");
}

#[test]
fn literals_and_braced_names_mix() {
    let r = get(b"/a/b?x=1", &[("X-Trace-Id", "t1"), ("Cookie", "sid=42")]);
    assert_eq!(
        expand(
            "${scheme}://h$request_uri|$uri|$args|$http_x_trace_id|$cookie_sid|$server_port|$proxy_host",
            &r
        ),
        "http://h/a/b?x=1|/a/b|x=1|t1|42|8080|web"
    );
}

#[test]
fn missing_values_expand_to_nothing() {
    assert_eq!(
        expand("$server_name$http_nope$cookie_nope", &get(b"/", &[])),
        ""
    );
}

#[test]
fn unknown_and_malformed_variables_are_errors() {
    assert_eq!(
        Template::parse("$nope", &[]).unwrap_err(),
        "unknown \"nope\" variable"
    );
    assert!(Template::parse("a $ b", &[]).is_err());
    assert!(Template::parse("${host", &[]).is_err());
    assert!(Template::parse("$http_", &[]).is_err());
}

fn map(source: &str, variable: &str, entries: &[(&str, &str)], default: &str) -> MapVar {
    MapVar {
        source: source.into(),
        variable: variable.into(),
        entries: entries
            .iter()
            .map(|(k, v)| crate::config::MapEntry {
                key: match k.strip_prefix('~') {
                    Some(re) => MapKey::Regex {
                        pattern: re.into(),
                        case_insensitive: false,
                    },
                    None => MapKey::Exact((*k).into()),
                },
                value: (*v).into(),
            })
            .collect(),
        default: default.into(),
        origin: crate::config::Origin::Builtin,
    }
}

/// Compiles `maps` as a config does: every variable numbered, cycles refused.
fn compile_all(maps: &[MapVar]) -> Result<Vec<CompiledMap>, usize> {
    let names: Vec<String> = maps.iter().map(|m| m.variable.clone()).collect();
    let compiled = CompiledMap::compile_maps(maps, &names).map_err(|(i, _)| i)?;
    match CompiledMap::find_cycle(&compiled) {
        Some(i) => Err(i),
        None => Ok(compiled),
    }
}

fn expand_with_maps(template: &str, maps: &[MapVar], req: &RequestHeader) -> String {
    let names: Vec<String> = maps.iter().map(|m| m.variable.clone()).collect();
    let compiled = compile_all(maps).unwrap();
    let mut info = info(req);
    info.maps = &compiled;
    let mut out = Vec::new();
    Template::parse(template, &names)
        .unwrap()
        .expand(&info, &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn connection_upgrade_map_idiom() {
    let maps = [map(
        "$http_upgrade",
        "connection_upgrade",
        &[("", "close")],
        "upgrade",
    )];
    let ws = get(b"/", &[("Upgrade", "websocket")]);
    assert_eq!(
        expand_with_maps("$connection_upgrade", &maps, &ws),
        "upgrade"
    );
    assert_eq!(
        expand_with_maps("$connection_upgrade", &maps, &get(b"/", &[])),
        "close"
    );
}

#[test]
fn map_exact_keys_win_over_regexes_in_order() {
    let maps = [map(
        "$uri",
        "kind",
        &[
            ("~^/api/", "api-re"),
            ("/api/v1", "exact"),
            ("~^/a", "a-re"),
        ],
        "other-$scheme",
    )];
    let kind = |path: &[u8]| expand_with_maps("$kind", &maps, &get(path, &[]));
    assert_eq!(kind(b"/api/v1"), "exact");
    assert_eq!(kind(b"/api/v2"), "api-re");
    assert_eq!(kind(b"/about"), "a-re");
    assert_eq!(kind(b"/x"), "other-http");
}

#[test]
fn maps_may_use_maps_but_not_themselves() {
    let chain = [
        map("$http_x", "inner", &[("1", "one")], "none"),
        map("$inner", "outer", &[("one", "[$inner]")], "-"),
    ];
    assert_eq!(
        expand_with_maps("$outer", &chain, &get(b"/", &[("X", "1")])),
        "[one]"
    );
    let cycle = [map("$b", "a", &[], ""), map("$a", "b", &[], "")];
    assert_eq!(compile_all(&cycle).err(), Some(0));
}

#[test]
fn binary_remote_addr_is_the_address_bytes() {
    let req = get(b"/", &[]);
    let mut i = info(&req);
    let t = Template::parse("$binary_remote_addr", &[]).unwrap();
    let mut out = Vec::new();
    t.expand(&i, &mut out);
    assert_eq!(out, [10, 0, 0, 7]);
    i.client_ip = Some("2001:db8::1".parse().unwrap());
    out.clear();
    t.expand(&i, &mut out);
    assert_eq!(out.len(), 16);
}

#[test]
fn uri_is_the_normalised_path_and_request_uri_the_raw_one() {
    let req = get(b"/a//b/../c?x=1", &[]);
    let mut i = info(&req);
    i.uri = Some(b"/a/c");
    let t = Template::parse("$uri $request_uri $args", &[]).unwrap();
    let mut out = Vec::new();
    t.expand(&i, &mut out);
    assert_eq!(String::from_utf8(out).unwrap(), "/a/c /a//b/../c?x=1 x=1");
}

#[test]
fn geo_variables_look_up_the_client_or_a_source() {
    use crate::net::geo::Geo;
    let lines = |text: &str| -> Vec<Vec<String>> {
        text.split(';')
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .filter(|l| !l.is_empty())
            .collect()
    };
    let (client, _) = Geo::from_lines(&lines("default 0; 10.0.0.0/8 1")).unwrap();
    let (by_header, _) =
        Geo::from_lines(&lines("default far; proxy 10.0.0.0/8; 192.0.2.0/24 near")).unwrap();
    let names = ["inside".to_string(), "where".to_string()];
    let compiled = [
        CompiledMap::geo(None, client),
        CompiledMap::geo(
            Some(Template::parse("$http_x_addr", &[]).unwrap()),
            by_header,
        ),
    ];
    let req = get(b"/", &[("X-Addr", "192.0.2.9")]);
    let mut i = info(&req);
    i.maps = &compiled;
    let expand = |i: &RequestInfo<'_>, t: &str| {
        let mut out = Vec::new();
        Template::parse(t, &names).unwrap().expand(i, &mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(expand(&i, "$inside $where"), "1 near");
    i.client_ip = Some("192.0.2.1".parse().unwrap());
    assert_eq!(expand(&i, "$inside"), "0");
}
