//! nginx's `ngx_http_acme_module` directives: `acme_issuer NAME { ... }` and
//! `acme_shared_zone` in `http`, `acme_certificate` in `server`, with the module's
//! names, parameters and defaults. Whether a directory answers is found out while
//! running (see [`crate::tls::acme`]).

use super::translate::{Nginx, Translator, arg_count, at, flag, unsupported};
use super::values;
use crate::config::acme::identifier_error;
use crate::config::{AcmeCertificate, AcmeIssuer, AcmeKey, ConfigError, ServerName};
use log::debug;
use std::path::PathBuf;

/// `acme_issuer NAME { uri ...; contact ...; state_path ...; ... }`.
pub fn issuer(t: &mut Translator, d: &Nginx) -> Result<(), ConfigError> {
    // A block directive: `arg_count` would ask for a `;`.
    if d.args().len() != 1 {
        return Err(at(
            d,
            "invalid number of arguments in \"acme_issuer\" directive",
        ));
    }
    let name = d.args()[0].clone();
    if t.acme_issuers.contains_key(&name) {
        return Err(at(d, format!("duplicate \"acme_issuer\" \"{name}\"")));
    }
    let base = t.base_dir();
    let mut issuer = AcmeIssuer {
        uri: String::new(),
        contacts: Vec::new(),
        state_path: Some(base.join(format!("acme_{name}"))),
        accept_terms_of_service: false,
        trusted_certificate: None,
        verify: true,
        renew_before_expiry: None,
        origin: d.origin(),
    };
    let mut uri_seen = false;
    for e in d.block()?.iter().map(Nginx::new) {
        let one = |e: &Nginx| -> Result<String, ConfigError> {
            arg_count(e, 1..=1)?;
            Ok(e.args()[0].clone())
        };
        match e.name() {
            "uri" if uri_seen => return Err(at(&e, "\"uri\" directive is duplicate")),
            "uri" => {
                let uri = one(&e)?;
                if !uri.starts_with("https://") && !uri.starts_with("http://") {
                    return Err(at(&e, format!("invalid uri \"{uri}\"")));
                }
                issuer.uri = uri;
                uri_seen = true;
            }
            "contact" => {
                let contact = one(&e)?;
                // The module assumes `mailto:` when no scheme is written.
                issuer.contacts.push(match contact.contains(':') {
                    true => contact,
                    false => format!("mailto:{contact}"),
                });
            }
            "state_path" => {
                let path = one(&e)?;
                issuer.state_path = (path != "off").then(|| base.join(path));
            }
            "accept_terms_of_service" => {
                arg_count(&e, 0..=0)?;
                issuer.accept_terms_of_service = true;
            }
            "ssl_trusted_certificate" => issuer.trusted_certificate = Some(base.join(one(&e)?)),
            "ssl_verify" => issuer.verify = flag(&e)?,
            "challenge" => match one(&e)?.as_str() {
                "http-01" | "http" => {}
                "tls-alpn-01" | "tls-alpn" => {
                    return Err(at(
                        &e,
                        "challenge \"tls-alpn-01\" is not supported: pinlb answers http-01",
                    ));
                }
                other => return Err(at(&e, format!("unsupported challenge \"{other}\""))),
            },
            // pinlb's own: renew this long before expiry instead of the default rule.
            "renew_before_expiry" => {
                let value = one(&e)?;
                let time = values::time(&value)
                    .ok_or_else(|| at(&e, format!("invalid value \"{value}\"")))?;
                issuer.renew_before_expiry = Some(time);
            }
            "account_key" | "external_account_key" | "preferred_chain" | "profile" => {
                return Err(at(
                    &e,
                    format!(
                        "\"{}\" is not supported: pinlb's account keys are ecdsa:256, generated",
                        e.name()
                    ),
                ));
            }
            _ => return Err(unsupported(&e)),
        }
    }
    if !uri_seen {
        return Err(at(
            d,
            format!("\"uri\" is missing in acme_issuer \"{name}\""),
        ));
    }
    if !issuer.accept_terms_of_service {
        return Err(at(
            d,
            format!(
                "\"accept_terms_of_service\" is missing in acme_issuer \"{name}\": pinlb orders certificates only from a CA whose terms were accepted"
            ),
        ));
    }
    t.acme_issuers.insert(name, issuer);
    Ok(())
}

/// `acme_shared_zone zone=NAME:SIZE`: accepted; pinlb keeps ACME state in its own
/// memory, shared by every thread.
pub fn shared_zone(d: &Nginx) -> Result<(), ConfigError> {
    arg_count(d, 1..=1)?;
    let arg = &d.args()[0];
    let size = arg
        .strip_prefix("zone=")
        .and_then(|z| z.split_once(':'))
        .map(|(_, size)| size);
    if size.and_then(values::size).is_none() {
        return Err(at(d, format!("invalid zone size \"{arg}\"")));
    }
    debug!(
        "{}:{}: \"acme_shared_zone\" has no effect in pinlb",
        d.pos().file.display(),
        d.pos().line
    );
    Ok(())
}

/// `acme_certificate ISSUER [IDENTIFIER...] [key=ALG[:SIZE]]`; without identifiers,
/// the server's `server_name`s (exact ones; wildcards and regexes are refused, as
/// the module does).
pub fn certificate(
    t: &Translator,
    d: &Nginx,
    server_names: &[ServerName],
) -> Result<AcmeCertificate, ConfigError> {
    arg_count(d, 1..=usize::MAX)?;
    let issuer = d.args()[0].clone();
    if !t.acme_issuers.contains_key(&issuer) {
        return Err(at(d, format!("issuer \"{issuer}\" is missing")));
    }
    let mut key = AcmeKey::default();
    let mut identifiers = Vec::new();
    for arg in &d.args()[1..] {
        if let Some(alg) = arg.strip_prefix("key=") {
            key = AcmeKey::parse(alg).map_err(|msg| at(d, msg))?;
            continue;
        }
        let name = arg.to_ascii_lowercase();
        if let Some(msg) = identifier_error(&name) {
            return Err(at(d, msg));
        }
        identifiers.push(name);
    }
    if identifiers.is_empty() {
        for name in server_names {
            match name {
                // `server_name _` is a catch-all, not a name.
                ServerName::Exact(n) if n == "_" => {}
                ServerName::Exact(n) => {
                    if let Some(msg) = identifier_error(n) {
                        return Err(at(d, format!("{msg} in \"server_name\"")));
                    }
                    identifiers.push(n.clone());
                }
                ServerName::Suffix(s)
                    if s.starts_with('.') && identifiers.contains(&s[1..].to_string()) => {}
                ServerName::Suffix(s) => {
                    return Err(at(
                        d,
                        format!(
                            "unsupported identifier \"*{s}\" in \"server_name\": wildcards cannot be validated by http-01"
                        ),
                    ));
                }
                ServerName::Prefix(p) => {
                    return Err(at(
                        d,
                        format!("unsupported identifier \"{p}*\" in \"server_name\""),
                    ));
                }
                ServerName::Regex(r) => {
                    return Err(at(
                        d,
                        format!(
                            "unsupported identifier \"~{r}\" in \"server_name\": regular expressions are not identifiers"
                        ),
                    ));
                }
            }
        }
    }
    identifiers.dedup();
    if identifiers.is_empty() {
        return Err(at(
            d,
            "no identifiers: \"acme_certificate\" needs names, or a \"server_name\" before it",
        ));
    }
    Ok(AcmeCertificate {
        issuer,
        identifiers,
        key,
        origin: d.origin(),
    })
}

/// Whether `ssl_certificate`'s argument is the module's variable.
pub fn is_acme_variable(arg: &str) -> bool {
    arg == "$acme_certificate" || arg == "$acme_certificate_key"
}

/// The path a `$acme_certificate` pair is kept under in the TLS level: never a file.
pub fn variable_path(arg: &str) -> PathBuf {
    PathBuf::from(arg)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{http, translate_str};
    use crate::config::AcmeKey;
    use std::path::PathBuf;
    use std::time::Duration;

    const SERVER: &str = "server { listen 443 ssl; server_name .example.test www.example.test _;
        acme_certificate le; ssl_certificate $acme_certificate;
        ssl_certificate_key $acme_certificate_key; location / { return 200; } }";

    #[test]
    fn issuer_directives_translate_with_the_modules_defaults() {
        let c = translate_str(&http(&format!(
            "acme_issuer le {{ uri https://acme.test/dir; contact admin@example.test;
                contact mailto:ops@example.test; accept_terms_of_service;
                ssl_trusted_certificate ca.pem; ssl_verify off; challenge http-01;
                renew_before_expiry 20d; }}
             acme_issuer other {{ uri https://other.test/dir; state_path off;
                accept_terms_of_service; }}
             acme_shared_zone zone=ngx_acme_shared:1M;
             {SERVER}"
        )))
        .unwrap();
        let le = &c.acme_issuers["le"];
        assert_eq!(le.uri, "https://acme.test/dir");
        assert_eq!(
            le.contacts,
            ["mailto:admin@example.test", "mailto:ops@example.test"]
        );
        assert_eq!(le.state_path, Some(PathBuf::from("/etc/nginx/acme_le")));
        assert_eq!(
            le.trusted_certificate,
            Some(PathBuf::from("/etc/nginx/ca.pem"))
        );
        assert!(!le.verify && le.accept_terms_of_service);
        assert_eq!(
            le.renew_before_expiry,
            Some(Duration::from_secs(20 * 86400))
        );
        assert_eq!(c.acme_issuers["other"].state_path, None);
        assert!(c.acme_issuers["other"].verify);
        let vs = &c.virtual_servers[0];
        assert!(vs.acme_serves && vs.certificates.is_empty());
        let cert = vs.acme.as_ref().unwrap();
        // `.example.test` is `example.test` and its subdomains: the name is ordered, the
        // wildcard is not; `_` is no name.
        assert_eq!(cert.identifiers, ["example.test", "www.example.test"]);
        assert_eq!(cert.key, AcmeKey::EcdsaP256);
    }

    #[test]
    fn explicit_identifiers_and_key_win_over_server_names() {
        let c = translate_str(&http(&format!(
            "acme_issuer le {{ uri https://acme.test/dir; accept_terms_of_service; }}
             {}",
            SERVER.replace(
                "acme_certificate le;",
                "acme_certificate le A.example.test key=ecdsa:384;"
            )
        )))
        .unwrap();
        let cert = c.virtual_servers[0].acme.as_ref().unwrap();
        assert_eq!(cert.identifiers, ["a.example.test"]);
        assert_eq!(cert.key, AcmeKey::EcdsaP384);
    }

    #[test]
    fn unsupported_issuer_settings_are_refused_by_name() {
        let ok = "uri https://a.test/d; accept_terms_of_service;";
        for (inner, msg) in [
            (
                format!("{ok} challenge tls-alpn-01;"),
                "\"tls-alpn-01\" is not supported",
            ),
            (
                format!("{ok} account_key rsa:2048;"),
                "\"account_key\" is not supported",
            ),
            (
                "uri ftp://x; accept_terms_of_service;".into(),
                "invalid uri \"ftp://x\"",
            ),
            (
                format!("{ok} frobnicate on;"),
                "unsupported directive \"frobnicate\"",
            ),
        ] {
            let err = translate_str(&http(&format!("acme_issuer le {{ {inner} }}"))).unwrap_err();
            assert!(err.contains(msg) && err.contains("nginx.conf:2"), "{err}");
        }
    }
}
