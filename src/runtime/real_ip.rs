//! Compiles the realip model of a server or route into the rule requests apply
//! (`crate::net::realip`), judging its addresses and header name.

use crate::config::{ConfigError, RealIp};
use crate::net::cidr::CidrList;
use crate::net::realip::{RealIpHeader, RealIpRule, parse_from};
use std::path::Path;

/// The rule for `model`; `None` when realip is off there.
pub fn compile(
    file: &Path,
    model: Option<&RealIp>,
) -> Result<Option<Box<RealIpRule>>, ConfigError> {
    let Some(model) = model else {
        return Ok(None);
    };
    let mut from = CidrList::new();
    for entry in &model.from {
        let warning = parse_from(&mut from, &entry.source)
            .map_err(|msg| ConfigError::invalid(file, &entry.origin, msg))?;
        if let Some(w) = warning {
            log::warn!("{}", ConfigError::invalid(file, &entry.origin, w));
        }
    }
    let header = RealIpHeader::parse(&model.header).ok_or_else(|| {
        let msg = format!(
            "invalid header name \"{}\" in \"real_ip_header\"",
            model.header
        );
        ConfigError::invalid(file, &model.origin, msg)
    })?;
    Ok(Some(Box::new(RealIpRule::new(
        from,
        header,
        model.recursive,
    ))))
}

/// The rule of a route, `None` when it is its server's: nginx runs realip in the location
/// only when the server's rule left the address alone, and the same rule again would too.
pub fn compile_route(
    file: &Path,
    route: Option<&RealIp>,
    server: Option<&RealIp>,
) -> Result<Option<Box<RealIpRule>>, ConfigError> {
    match route == server {
        true => Ok(None),
        false => compile(file, route),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Origin, RealIpFrom};

    fn model(from: &[&str], header: &str) -> RealIp {
        RealIp {
            from: from
                .iter()
                .map(|f| RealIpFrom {
                    source: f.to_string(),
                    origin: Origin::Json(format!("real_ip.from.{f}")),
                })
                .collect(),
            header: header.into(),
            recursive: false,
            origin: Origin::Json("real_ip.header".into()),
        }
    }

    #[test]
    fn bad_addresses_and_header_names_are_errors_where_written() {
        let file = Path::new("c.json");
        let err = |m: RealIp| compile(file, Some(&m)).err().map(|e| e.to_string());
        let host = err(model(&["10.0.0.0/8", "proxy.local"], "X-Real-IP")).unwrap();
        assert!(
            host.contains("host not found in set_real_ip_from \"proxy.local\""),
            "{host}"
        );
        assert!(host.contains("real_ip.from.proxy.local"), "{host}");
        let name = err(model(&["10.0.0.0/8"], "X Real")).unwrap();
        assert!(name.contains("invalid header name \"X Real\""), "{name}");
        assert!(err(model(&["10.0.0.0/8", "unix:", "::1"], "proxy_protocol")).is_none());
        assert!(compile(file, None).unwrap().is_none());
    }

    #[test]
    fn a_route_with_its_servers_settings_has_no_rule_of_its_own() {
        let file = Path::new("c.json");
        let server = model(&["10.0.0.0/8"], "X-Real-IP");
        let own = model(&["192.0.2.0/24"], "X-Real-IP");
        assert!(
            compile_route(file, Some(&server), Some(&server))
                .unwrap()
                .is_none()
        );
        assert!(
            compile_route(file, Some(&own), Some(&server))
                .unwrap()
                .is_some()
        );
        assert!(compile_route(file, None, None).unwrap().is_none());
    }
}
