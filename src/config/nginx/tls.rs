//! nginx's TLS and HTTP/2 directives in `http` and `server`: `ssl_certificate`,
//! `ssl_certificate_key`, `ssl_protocols`, `ssl_ciphers`, `ssl_prefer_server_ciphers`,
//! `ssl_ecdh_curve`, `ssl_session_cache`, `ssl_session_timeout`, `ssl_session_tickets`,
//! `http2`, and those accepted with a note (`ssl_stapling*`, `ssl_dhparam`, ...). A
//! server inherits what it does not set from `http`, each directive as a whole.

use super::translate::{Nginx, arg_count, at, flag};
use super::values;
use crate::config::{CertPair, ConfigError, ListenerTls, Origin, TlsVersion};
use log::info;
use std::path::{Path, PathBuf};

/// Accepted, with what pinlb does instead.
const NOTED: [(&str, &str); 9] = [
    ("ssl_stapling", "OCSP responses are not stapled"),
    ("ssl_stapling_verify", "OCSP responses are not stapled"),
    ("ssl_stapling_file", "OCSP responses are not stapled"),
    ("ssl_stapling_responder", "OCSP responses are not stapled"),
    (
        "ssl_trusted_certificate",
        "client certificates are not asked for",
    ),
    (
        "ssl_dhparam",
        "no DHE key exchange: the TLS library uses ECDHE only",
    ),
    ("ssl_buffer_size", "the TLS library sizes its own records"),
    (
        "ssl_session_ticket_key",
        "ticket keys are random per process and rotate every 6 hours",
    ),
    ("ssl_early_data", "0-RTT data is not accepted"),
];

/// Sessions per megabyte of an nginx `shared:NAME:SIZE` cache (nginx's own estimate).
const SESSIONS_PER_MB: u64 = 4000;

/// The TLS settings written at one level (`None`: inherited).
#[derive(Debug, Clone, Default)]
pub struct TlsLevel {
    certs: Option<Vec<(PathBuf, Origin)>>,
    keys: Option<Vec<PathBuf>>,
    protocols: Option<Vec<TlsVersion>>,
    prefer_server_ciphers: Option<bool>,
    ciphers: Option<String>,
    ecdh_curve: Option<String>,
    session_cache: Option<usize>,
    session_tickets: Option<bool>,
    /// `http2 on|off`.
    pub http2: Option<bool>,
}

impl TlsLevel {
    /// Takes `d` if it is a TLS or HTTP/2 directive; `Ok(false)` otherwise. Relative file
    /// names are taken from `base` (the main file's folder, as `include` does).
    pub fn apply(&mut self, d: &Nginx, base: &Path) -> Result<bool, ConfigError> {
        let one = |d: &Nginx| -> Result<String, ConfigError> {
            arg_count(d, 1..=1)?;
            Ok(d.args()[0].clone())
        };
        match d.name() {
            "ssl_certificate" => {
                let path = file_arg(d, base, one(d)?)?;
                self.certs
                    .get_or_insert_with(Vec::new)
                    .push((path, d.origin()));
            }
            "ssl_certificate_key" => {
                let path = file_arg(d, base, one(d)?)?;
                self.keys.get_or_insert_with(Vec::new).push(path);
            }
            "ssl_protocols" => {
                arg_count(d, 1..=usize::MAX)?;
                let mut versions = Vec::new();
                for name in d.args() {
                    let v = TlsVersion::parse(name)
                        .map_err(|msg| at(d, format!("{msg} in \"ssl_protocols\"")))?;
                    if !versions.contains(&v) {
                        versions.push(v);
                    }
                }
                versions.sort();
                self.protocols = Some(versions);
            }
            "ssl_prefer_server_ciphers" => self.prefer_server_ciphers = Some(flag(d)?),
            "ssl_ciphers" => self.ciphers = Some(one(d)?),
            "ssl_ecdh_curve" => self.ecdh_curve = Some(one(d)?),
            "ssl_session_cache" => self.session_cache = Some(session_cache(d)?),
            "ssl_session_timeout" => {
                let value = one(d)?;
                values::time(&value).ok_or_else(|| at(d, format!("invalid value \"{value}\"")))?;
                note(
                    d,
                    "the TLS library keeps sessions and tickets for up to 6 hours",
                );
            }
            "ssl_session_tickets" => self.session_tickets = Some(flag(d)?),
            "http2" => self.http2 = Some(flag(d)?),
            "ssl" => {
                return Err(at(
                    d,
                    "the \"ssl\" directive is obsolete, use the \"listen ... ssl\" directive instead",
                ));
            }
            name => match NOTED.iter().find(|(n, _)| *n == name) {
                Some((_, what)) => {
                    d.simple()?;
                    note(d, what);
                }
                None => return Ok(false),
            },
        }
        Ok(true)
    }

    /// This level's settings over `parent`'s (`http` for a server).
    pub fn inherit(&self, parent: &TlsLevel) -> TlsLevel {
        // nginx pairs certificates with keys by position, inheriting each list whole.
        let certs_here = self.certs.is_some();
        TlsLevel {
            certs: self.certs.clone().or_else(|| parent.certs.clone()),
            keys: match (certs_here, &self.keys) {
                (_, Some(keys)) => Some(keys.clone()),
                (false, None) => parent.keys.clone(),
                (true, None) => None,
            },
            protocols: self.protocols.clone().or_else(|| parent.protocols.clone()),
            prefer_server_ciphers: self.prefer_server_ciphers.or(parent.prefer_server_ciphers),
            ciphers: self.ciphers.clone().or_else(|| parent.ciphers.clone()),
            ecdh_curve: self
                .ecdh_curve
                .clone()
                .or_else(|| parent.ecdh_curve.clone()),
            session_cache: self.session_cache.or(parent.session_cache),
            session_tickets: self.session_tickets.or(parent.session_tickets),
            http2: self.http2.or(parent.http2),
        }
    }

    /// The certificate pairs, each `ssl_certificate` with the `ssl_certificate_key` of
    /// the same position.
    pub fn pairs(&self, server: &Nginx) -> Result<Vec<CertPair>, ConfigError> {
        let certs = self.certs.as_deref().unwrap_or_default();
        let keys = self.keys.as_deref().unwrap_or_default();
        if let Some((cert, _)) = certs.get(keys.len()) {
            return Err(at(
                server,
                format!(
                    "no \"ssl_certificate_key\" is defined for certificate \"{}\"",
                    cert.display()
                ),
            ));
        }
        if keys.len() > certs.len() {
            return Err(at(
                server,
                "\"ssl_certificate_key\" without an \"ssl_certificate\"",
            ));
        }
        Ok(certs
            .iter()
            .zip(keys)
            .map(|((cert, origin), key)| CertPair {
                cert: cert.clone(),
                key: key.clone(),
                origin: origin.clone(),
            })
            .collect())
    }

    /// Takes the `ssl_certificate $acme_certificate; ssl_certificate_key
    /// $acme_certificate_key;` pair out of `pairs`: whether there was one. Any other mix
    /// of the variables with files is an error at the directive.
    pub fn acme_pair(file: &Path, pairs: &mut Vec<CertPair>) -> Result<bool, ConfigError> {
        let is_var = |p: &Path| p.to_str().is_some_and(super::acme::is_acme_variable);
        let mut found = false;
        for pair in pairs.iter() {
            match (is_var(&pair.cert), is_var(&pair.key)) {
                (false, false) => {}
                (true, true)
                    if pair.cert == Path::new("$acme_certificate")
                        && pair.key == Path::new("$acme_certificate_key") =>
                {
                    found = true;
                }
                _ => {
                    return Err(ConfigError::invalid(
                        file,
                        &pair.origin,
                        "\"ssl_certificate $acme_certificate\" goes with \"ssl_certificate_key $acme_certificate_key\"",
                    ));
                }
            }
        }
        pairs.retain(|p| !is_var(&p.cert));
        Ok(found)
    }

    /// The handshake settings, should this server be the default of a TLS listener.
    pub fn listener(&self, origin: Origin) -> ListenerTls {
        let default = ListenerTls::default();
        ListenerTls {
            protocols: self.protocols.clone().unwrap_or(default.protocols),
            prefer_server_ciphers: self.prefer_server_ciphers.unwrap_or(false),
            ciphers: self.ciphers.clone(),
            ecdh_curve: self.ecdh_curve.clone(),
            session_cache: self.session_cache.unwrap_or(0),
            session_tickets: self.session_tickets.unwrap_or(true),
            certificates: Vec::new(),
            acme: Vec::new(),
            origin,
        }
    }
}

/// A certificate or key file named by `d`, from `base`; the ACME module's variables are
/// kept as written (see [`TlsLevel::acme_pair`]); other variables are refused.
fn file_arg(d: &Nginx, base: &Path, arg: String) -> Result<PathBuf, ConfigError> {
    if super::acme::is_acme_variable(&arg) {
        return Ok(super::acme::variable_path(&arg));
    }
    if arg.starts_with('$') {
        return Err(at(
            d,
            format!(
                "variables in \"{}\" are not supported (only $acme_certificate and $acme_certificate_key)",
                d.name()
            ),
        ));
    }
    Ok(base.join(arg))
}

/// Whether `name` is one of the directives [`TlsLevel::apply`] takes.
pub fn is_tls_directive(name: &str) -> bool {
    name.starts_with("ssl_") || name == "http2" || name == "ssl"
}

/// `ssl_session_cache off|none|[builtin[:SIZE]] [shared:NAME:SIZE]`: how many sessions.
fn session_cache(d: &Nginx) -> Result<usize, ConfigError> {
    arg_count(d, 1..=2)?;
    let mut sessions: u64 = 0;
    for arg in d.args() {
        let invalid = || at(d, format!("invalid session cache \"{arg}\""));
        match arg.as_str() {
            "off" | "none" if d.args().len() == 1 => return Ok(0),
            "builtin" => sessions += 20480,
            a if a.starts_with("builtin:") => {
                sessions += a["builtin:".len()..]
                    .parse::<u64>()
                    .map_err(|_| invalid())?;
            }
            a if a.starts_with("shared:") => {
                let (_, size) = a["shared:".len()..].rsplit_once(':').ok_or_else(invalid)?;
                let bytes = values::size(size).filter(|b| *b > 0).ok_or_else(invalid)?;
                sessions += (bytes * SESSIONS_PER_MB).div_ceil(1024 * 1024);
            }
            _ => return Err(invalid()),
        }
    }
    Ok(usize::try_from(sessions).unwrap_or(usize::MAX))
}

fn note(d: &Nginx, what: &str) {
    info!(
        "{}:{}: \"{}\" accepted: {what}",
        d.pos().file.display(),
        d.pos().line,
        d.name()
    );
}

#[cfg(test)]
mod tests {
    use super::super::tests::{http, translate_str};
    use crate::config::TlsVersion;
    use std::path::Path;

    #[test]
    fn tls_directives_translate_onto_the_listeners_default_server() {
        let c = translate_str(&http(
            "ssl_certificate rsa.pem; ssl_certificate_key rsa.key;
             ssl_certificate ec.pem; ssl_certificate_key ec.key;
             ssl_protocols TLSv1.3 TLSv1.2 TLSv1.3; ssl_session_tickets off;
             server { listen 443 ssl; server_name a.test; location / { return 200; } }
             server { listen 443 default_server; listen 80; http2 on; server_name b.test;
                      ssl_certificate /etc/b.pem; ssl_certificate_key /etc/b.key;
                      ssl_protocols TLSv1.3; ssl_prefer_server_ciphers on;
                      ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:HIGH; ssl_ecdh_curve X25519;
                      ssl_session_cache shared:SSL:1m;
                      location / { return 200; } }",
        ))
        .unwrap();
        let [plain, tls] =
            [80, 443].map(|p| c.listeners.iter().find(|l| l.addr.port() == p).unwrap());
        assert!(
            plain.tls.is_none() && plain.http2,
            "http2 on turns h2c on for port 80"
        );
        let t = tls
            .tls
            .as_ref()
            .expect("ssl on the socket, whichever listen says it");
        assert!(tls.http2);
        // The default server's settings, not the first server's.
        assert_eq!(t.protocols, vec![TlsVersion::V1_3]);
        assert!(t.prefer_server_ciphers);
        assert_eq!(
            t.ciphers.as_deref(),
            Some("ECDHE-RSA-AES128-GCM-SHA256:HIGH")
        );
        assert_eq!(t.ecdh_curve.as_deref(), Some("X25519"));
        assert_eq!(t.session_cache, 4000);
        assert!(!t.session_tickets, "inherited from http");
        let a = &c.virtual_servers[0].certificates;
        assert_eq!(a.len(), 2);
        assert_eq!(
            a[1].cert,
            Path::new("/etc/nginx/ec.pem"),
            "relative to the main file"
        );
        assert_eq!(a[1].key, Path::new("/etc/nginx/ec.key"));
        assert_eq!(
            c.virtual_servers[1].certificates[0].cert,
            Path::new("/etc/b.pem")
        );
        let builtin = translate_str(&http(
            "ssl_session_cache builtin:100 shared:X:2m; ssl_certificate a; ssl_certificate_key k;
             server { listen 443 ssl; location / { return 200; } }",
        ))
        .unwrap();
        assert_eq!(
            builtin.listeners[0].tls.as_ref().unwrap().session_cache,
            8100
        );
    }

    #[test]
    fn bad_tls_directives_are_refused_with_their_line() {
        let err = |text: &str| translate_str(&http(text)).expect_err(text);
        let server = |body: &str| {
            format!("server {{ listen 443 ssl; {body} location / {{ return 200; }} }}")
        };
        assert!(err(&server("ssl_certificate a.pem;")).contains(
            "no \"ssl_certificate_key\" is defined for certificate \"/etc/nginx/a.pem\" in /etc/nginx/nginx.conf:2"
        ));
        assert!(
            err(&server(""))
                .contains("no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive")
        );
        let e = err(&server(
            "ssl_certificate a; ssl_certificate_key k; ssl_protocols SSLv3 TLSv1.2;",
        ));
        assert!(e.contains("\"SSLv3\" is not supported"), "{e}");
        assert!(err(&server("ssl_session_cache shared:SSL;")).contains("invalid session cache"));
        assert!(
            err("server { listen 80; location / { ssl_protocols TLSv1.2; return 200; } }")
                .contains("\"ssl_protocols\" directive is not allowed here")
        );
        assert!(err("ssl on;").contains("obsolete"));
        assert!(err("http2 maybe;").contains("it must be \"on\" or \"off\""));
    }
}
