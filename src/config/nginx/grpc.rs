//! nginx's grpc module: `grpc_pass [grpc://|grpcs://]ADDRESS`, and the `grpc_*` directives
//! that mean what their `proxy_*` namesakes do (pinlb keeps one set of upstream settings).

use super::values::ProxyUrl;

/// The `proxy_*` directive a `grpc_*` one stands for; any other name is returned as is.
pub fn proxy_name(name: &str) -> &str {
    match name {
        "grpc_set_header" => "proxy_set_header",
        "grpc_connect_timeout" => "proxy_connect_timeout",
        "grpc_read_timeout" => "proxy_read_timeout",
        "grpc_send_timeout" => "proxy_send_timeout",
        "grpc_next_upstream" => "proxy_next_upstream",
        "grpc_next_upstream_tries" => "proxy_next_upstream_tries",
        "grpc_ssl_server_name" => "proxy_ssl_server_name",
        "grpc_ssl_name" => "proxy_ssl_name",
        "grpc_ssl_verify" => "proxy_ssl_verify",
        "grpc_ssl_trusted_certificate" => "proxy_ssl_trusted_certificate",
        other => other,
    }
}

/// A `grpc_pass` target as the `proxy_pass` URL it amounts to: `grpc://` (also without a
/// scheme, as nginx takes it) is `http://`, `grpcs://` is `https://`, with the same
/// default ports (80, 443). nginx's `grpc_pass` has no URI part.
pub fn target(value: &str) -> Result<ProxyUrl, String> {
    if value.contains('$') {
        return Err(format!(
            "variables in \"grpc_pass {value}\" are not supported"
        ));
    }
    let (tls, rest) = if let Some(rest) = value.strip_prefix("grpc://") {
        (false, rest)
    } else if let Some(rest) = value.strip_prefix("grpcs://") {
        (true, rest)
    } else if value.contains("://") {
        return Err(format!("invalid URL prefix in \"{value}\""));
    } else {
        (false, value)
    };
    let scheme = if tls { "https" } else { "http" };
    let url = ProxyUrl::parse(&format!("{scheme}://{rest}"))
        .map_err(|_| format!("invalid host in \"{value}\""))?;
    if url.uri.is_some() {
        return Err(format!("invalid URI part in \"grpc_pass {value}\""));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{http, translate_str};
    use super::*;
    use std::time::Duration;

    #[test]
    fn grpc_pass_and_grpc_settings_translate() {
        let c = translate_str(&http(
            "upstream g { server 10.0.0.1:50051; }
             grpc_read_timeout 7s;
             server { grpc_ssl_verify on;
               location /plain/ { grpc_pass grpc://g; grpc_set_header X-A 1; grpc_connect_timeout 2s;
                 grpc_send_timeout 3s; grpc_next_upstream error; grpc_next_upstream_tries 2; }
               location /tls/ { grpc_pass grpcs://g; grpc_ssl_server_name on; grpc_ssl_name g.test;
                 grpc_ssl_trusted_certificate /ca.pem; }
               location / { proxy_pass http://g; proxy_http_version 1.1; } }",
        ))
        .unwrap();
        let proxy = |r: usize| &c.virtual_servers[0].routes[r].proxy;
        let plain = proxy(0);
        assert!(plain.http2 && !plain.upstream_tls.enabled);
        assert_eq!(plain.read_timeout, Duration::from_secs(7), "from http");
        assert_eq!(plain.connect_timeout, Duration::from_secs(2));
        assert_eq!(plain.send_timeout, Duration::from_secs(3));
        assert!(!plain.next_upstream.timeout);
        assert_eq!(plain.next_upstream_tries, 2);
        assert!(
            plain
                .set_headers
                .iter()
                .any(|h| h.name == "X-A" && h.value == "1")
        );
        let tls = proxy(1);
        assert!(tls.http2 && tls.upstream_tls.enabled && tls.upstream_tls.verify);
        assert!(tls.upstream_tls.server_name);
        assert_eq!(tls.upstream_tls.name.as_deref(), Some("g.test"));
        assert_eq!(
            tls.upstream_tls.trusted_certificate.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        assert!(!proxy(2).http2, "proxy_pass speaks HTTP/1.1");
    }

    #[test]
    fn schemes_map_onto_proxy_urls() {
        let plain = target("grpc://backends").unwrap();
        assert_eq!(
            (plain.tls, plain.host_port()),
            (false, "backends:80".into())
        );
        let bare = target("127.0.0.1:50051").unwrap();
        assert_eq!(
            (bare.tls, bare.host_port()),
            (false, "127.0.0.1:50051".into())
        );
        let tls = target("grpcs://[::1]").unwrap();
        assert_eq!((tls.tls, tls.host_port()), (true, "[::1]:443".into()));
    }

    #[test]
    fn bad_targets_say_why() {
        for (value, msg) in [
            ("grpc://a/b", "invalid URI part in \"grpc_pass grpc://a/b\""),
            ("http://a", "invalid URL prefix in \"http://a\""),
            (
                "grpc://$u",
                "variables in \"grpc_pass grpc://$u\" are not supported",
            ),
            ("grpc://", "invalid host in \"grpc://\""),
        ] {
            assert_eq!(target(value).unwrap_err(), msg, "{value}");
        }
    }

    #[test]
    fn only_grpc_names_are_renamed() {
        assert_eq!(proxy_name("grpc_read_timeout"), "proxy_read_timeout");
        assert_eq!(proxy_name("grpc_ssl_verify"), "proxy_ssl_verify");
        assert_eq!(proxy_name("proxy_set_header"), "proxy_set_header");
        assert_eq!(proxy_name("grpc_buffer_size"), "grpc_buffer_size");
    }
}
