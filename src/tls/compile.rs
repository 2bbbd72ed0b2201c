//! The SNI maps of a config: every certificate pair read and checked (so that `-t` and a
//! reload fail on a broken one, with the directive's file:line), per TLS listener.

use super::load::{LoadedCert, load_pair};
use super::store::{CertBundle, SniMap, SniTables};
use crate::config::{AcmeCertificate, CertPair, Config, ConfigError, ServerName};
use crate::routing::server_names::Names;
use log::warn;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Reads every certificate the config names and builds each TLS listener's SNI map.
pub fn sni_tables(config: &Config) -> Result<SniTables, ConfigError> {
    let mut loaded: HashMap<(PathBuf, PathBuf), LoadedCert> = HashMap::new();
    let mut load = |pair: &CertPair| -> Result<LoadedCert, ConfigError> {
        let id = (pair.cert.clone(), pair.key.clone());
        if let Some(cert) = loaded.get(&id) {
            return Ok(cert.clone());
        }
        let cert = load_pair(&pair.cert, &pair.key)
            .map_err(|msg| ConfigError::invalid(&config.source, &pair.origin, msg))?;
        if let Some(warning) = &cert.warning {
            let at = ConfigError::invalid(&config.source, &pair.origin, warning.clone());
            warn!("{at}");
        }
        loaded.insert(id, cert.clone());
        Ok(cert)
    };
    let mut tables = SniTables::new();
    for listener in &config.listeners {
        let Some(tls) = &listener.tls else { continue };
        let mut entries = Vec::new();
        let mut default = None;
        for vs in &config.virtual_servers {
            let acme = vs.acme.as_ref().filter(|_| vs.acme_serves);
            if (vs.certificates.is_empty() && acme.is_none())
                || !vs.listen.iter().any(|a| listener.serves(a))
            {
                continue;
            }
            let certs = vs
                .certificates
                .iter()
                .map(&mut load)
                .collect::<Result<Vec<_>, _>>()?;
            let names = Names::new(&vs.server_names)
                .map_err(|msg| ConfigError::invalid(&config.source, &vs.origin, msg))?;
            let bundle = match acme {
                Some(acme) => Arc::new(stand_in(config, acme)?),
                None => Arc::new(bundle(certs)),
            };
            let is_default = vs.default_for.iter().any(|a| listener.serves(a));
            if is_default || default.is_none() {
                default = Some(Arc::clone(&bundle));
            }
            entries.push((names, bundle));
        }
        // Certificates of the listener itself answer for the names they carry.
        for pair in &tls.certificates {
            let cert = load(pair)?;
            let names = cert_names(&cert.names);
            let bundle = Arc::new(bundle(vec![cert]));
            default.get_or_insert_with(|| Arc::clone(&bundle));
            entries.push((names, bundle));
        }
        // ACME certificates of the listener answer for their identifiers.
        for acme in &tls.acme {
            let bundle = Arc::new(stand_in(config, acme)?);
            default.get_or_insert_with(|| Arc::clone(&bundle));
            entries.push((cert_names(&acme.identifiers), bundle));
        }
        if default.is_none() {
            return Err(ConfigError::invalid(
                &config.source,
                &listener.origin,
                "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive",
            ));
        }
        tables.insert(listener.addr, Arc::new(SniMap::new(entries, default)));
    }
    Ok(tables)
}

/// The self-signed certificate served for an ACME certificate until it exists; the
/// ACME one replaces it, by its alias, once installed.
fn stand_in(config: &Config, acme: &AcmeCertificate) -> Result<CertBundle, ConfigError> {
    let key = super::acme::stand_in(&acme.identifiers).map_err(|e| {
        ConfigError::invalid(
            &config.source,
            &acme.origin,
            format!("cannot make a self-signed certificate: {e}"),
        )
    })?;
    Ok(CertBundle::stand_in(
        vec![key],
        &super::acme::alias_of(acme),
    ))
}

/// Preferred first: ECDSA (and other non-RSA) keys, then RSA, each in config order.
fn bundle(mut certs: Vec<LoadedCert>) -> CertBundle {
    certs.sort_by_key(|c| c.rsa);
    CertBundle::new(certs.into_iter().map(|c| c.key).collect())
}

/// A certificate's DNS names as server names: `*.example.com` matches one more label.
fn cert_names(names: &[String]) -> Names {
    let list: Vec<ServerName> = names
        .iter()
        .map(|n| match n.strip_prefix('*') {
            Some(suffix) => ServerName::Suffix(suffix.to_string()),
            None => ServerName::Exact(n.clone()),
        })
        .collect();
    Names::new(&list).unwrap_or_default()
}
