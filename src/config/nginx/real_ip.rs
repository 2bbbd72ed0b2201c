//! nginx's realip directives (`set_real_ip_from`, `real_ip_header`, `real_ip_recursive`)
//! at the http, server and location levels, merged as ngx_http_realip_module merges them:
//! the `set_real_ip_from` list is inherited whole by a level that has none of its own,
//! the header and the flag one by one.

use super::translate::{Nginx, arg_count, at, flag};
use crate::config::{ConfigError, DEFAULT_REAL_IP_HEADER, Origin, RealIp, RealIpFrom};

/// What one level sets; `None` inherits from the enclosing level.
#[derive(Debug, Clone, Default)]
pub struct RealIpLevel {
    from: Option<Vec<RealIpFrom>>,
    header: Option<(String, Origin)>,
    recursive: Option<bool>,
}

impl RealIpLevel {
    /// This level's settings over `parent`'s.
    pub fn inherit(&self, parent: &RealIpLevel) -> RealIpLevel {
        RealIpLevel {
            from: self.from.clone().or_else(|| parent.from.clone()),
            header: self.header.clone().or_else(|| parent.header.clone()),
            recursive: self.recursive.or(parent.recursive),
        }
    }

    /// The effective settings; `None` when no address is trusted (realip is off).
    pub fn real_ip(&self) -> Option<RealIp> {
        let from = self.from.clone().filter(|f| !f.is_empty())?;
        let (header, origin) = match &self.header {
            Some((header, origin)) => (header.clone(), origin.clone()),
            None => (DEFAULT_REAL_IP_HEADER.to_string(), from[0].origin.clone()),
        };
        Some(RealIp {
            from,
            header,
            recursive: self.recursive.unwrap_or(false),
            origin,
        })
    }

    /// Applies `d` if it is a realip directive; `Ok(false)` if not.
    pub fn apply(&mut self, d: &Nginx) -> Result<bool, ConfigError> {
        match d.name() {
            "set_real_ip_from" => {
                arg_count(d, 1..=1)?;
                self.from.get_or_insert_with(Vec::new).push(RealIpFrom {
                    source: d.args()[0].clone(),
                    origin: d.origin(),
                });
            }
            "real_ip_header" => {
                arg_count(d, 1..=1)?;
                if self.header.is_some() {
                    return Err(at(d, "\"real_ip_header\" directive is duplicate"));
                }
                self.header = Some((d.args()[0].clone(), d.origin()));
            }
            "real_ip_recursive" => {
                let on = flag(d)?;
                if self.recursive.is_some() {
                    return Err(at(d, "\"real_ip_recursive\" directive is duplicate"));
                }
                self.recursive = Some(on);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::nginx::tests::{http, translate_str};

    #[test]
    fn realip_translates_with_nginx_inheritance() {
        let c = translate_str(&http(
            "set_real_ip_from 10.0.0.0/8; set_real_ip_from unix:; real_ip_recursive on;
             server {
                 real_ip_header X-Forwarded-For;
                 location / { return 200; }
                 location /own { set_real_ip_from 192.0.2.1; return 200; }
             }
             server { listen 81; set_real_ip_from 127.0.0.1; location / { return 200; } }",
        ))
        .unwrap();
        let vs = &c.virtual_servers[0];
        let server = vs.real_ip.as_ref().unwrap();
        let from: Vec<&str> = server.from.iter().map(|f| f.source.as_str()).collect();
        assert_eq!(from, ["10.0.0.0/8", "unix:"]);
        assert_eq!(
            (server.header.as_str(), server.recursive),
            ("X-Forwarded-For", true)
        );
        assert_eq!(vs.routes[0].real_ip.as_ref(), Some(server));
        // A list of its own replaces the inherited one whole; the rest is inherited.
        let own = vs.routes[1].real_ip.as_ref().unwrap();
        assert_eq!(own.from.len(), 1);
        assert_eq!(
            (own.header.as_str(), own.recursive),
            ("X-Forwarded-For", true)
        );
        let other = c.virtual_servers[1].real_ip.as_ref().unwrap();
        assert_eq!((other.header.as_str(), other.from.len()), ("X-Real-IP", 1));
        let off = translate_str(&http("server { location / { return 200; } }")).unwrap();
        assert!(off.virtual_servers[0].real_ip.is_none());
    }

    #[test]
    fn realip_directives_are_checked_as_nginx_checks_them() {
        for (text, want) in [
            (
                "real_ip_header X-Real-IP; real_ip_header X-Forwarded-For;",
                "\"real_ip_header\" directive is duplicate",
            ),
            (
                "real_ip_recursive on; real_ip_recursive off;",
                "\"real_ip_recursive\" directive is duplicate",
            ),
            ("real_ip_recursive yes;", "it must be \"on\" or \"off\""),
            ("set_real_ip_from;", "invalid number of arguments"),
        ] {
            let err = translate_str(&http(&format!("{text} server {{ }}")))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
