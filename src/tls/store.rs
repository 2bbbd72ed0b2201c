//! The certificates in force: for each TLS listener an SNI map (nginx's `server_name`
//! rules, then the default server), swapped whole on reload, and certificates installed
//! at run time by server name, consulted first. The rustls resolver of each listener
//! reads them at every handshake; a connection keeps the certificate it was given.

use crate::routing::server_names::{Names, Quality, normalize_host};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The certificates one name (or virtual server) answers with: one per key type, the
/// preferred first (ECDSA before RSA).
#[derive(Debug, Clone, Default)]
pub struct CertBundle {
    keys: Vec<Arc<CertifiedKey>>,
    /// The name an installed certificate replaces this one under (an ACME
    /// certificate's, whose self-signed stand-in this is); `None` for files.
    installed_as: Option<Box<str>>,
}

impl CertBundle {
    /// `keys` in the order to try them.
    pub fn new(keys: Vec<Arc<CertifiedKey>>) -> Self {
        CertBundle {
            keys,
            installed_as: None,
        }
    }

    /// A stand-in served until a certificate is installed as `name`
    /// ([`CertStore::install`]); from then on that one answers wherever this would.
    pub fn stand_in(keys: Vec<Arc<CertifiedKey>>, name: &str) -> Self {
        CertBundle {
            keys,
            installed_as: Some(name.into()),
        }
    }

    /// The certificates, preferred first.
    pub fn keys(&self) -> &[Arc<CertifiedKey>] {
        &self.keys
    }

    /// The first certificate whose key can sign with a scheme the client offers.
    fn choose(&self, hello: &ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        self.keys
            .iter()
            .find(|k| k.key.choose_scheme(schemes).is_some())
            .or(self.keys.first())
            .cloned()
    }
}

/// Who answers on one TLS listener, by SNI.
#[derive(Debug, Default)]
pub struct SniMap {
    /// In config order: virtual servers' names (or a certificate's own names).
    entries: Vec<(Names, Arc<CertBundle>)>,
    /// For clients without SNI, or whose name matches nothing: the default server's.
    default: Option<Arc<CertBundle>>,
}

impl SniMap {
    pub fn new(entries: Vec<(Names, Arc<CertBundle>)>, default: Option<Arc<CertBundle>>) -> Self {
        SniMap { entries, default }
    }

    /// nginx's choice: exact, longest `*.suffix`, longest `prefix.*`, first regex; else
    /// the default.
    pub fn find(&self, sni: Option<&str>) -> Option<&Arc<CertBundle>> {
        let named = sni.and_then(|sni| {
            let host = normalize_host(sni);
            self.entries
                .iter()
                .enumerate()
                .filter_map(|(i, (names, bundle))| Some((names.matches(&host)?, i, bundle)))
                .min_by_key(|(q, i, _)| (*q, if *q == Quality::Regex { *i } else { 0 }))
                .map(|(_, _, bundle)| bundle)
        });
        named.or(self.default.as_ref())
    }
}

/// Every TLS listener's SNI map, by listener address.
pub type SniTables = HashMap<SocketAddr, Arc<SniMap>>;

/// The certificates of the process. Cheap to read at every handshake (two atomic loads
/// and a map lookup); written by reloads and [`CertStore::install`].
#[derive(Debug, Default)]
pub struct CertStore {
    /// From the config files; replaced by each successful reload.
    files: ArcSwap<SniTables>,
    /// Installed at run time by exact server name (lowercase), on every TLS listener;
    /// they win over the files' and survive reloads until removed.
    installed: ArcSwap<HashMap<String, Arc<CertBundle>>>,
}

impl CertStore {
    pub fn new(tables: SniTables) -> Arc<CertStore> {
        Arc::new(CertStore {
            files: ArcSwap::from_pointee(tables),
            installed: ArcSwap::default(),
        })
    }

    /// The files' certificates after a reload. A listener the new config no longer has
    /// still accepts until the next binary upgrade: it keeps what it had.
    pub fn replace_files(&self, mut tables: SniTables) {
        for (addr, map) in self.files.load().iter() {
            tables.entry(*addr).or_insert_with(|| Arc::clone(map));
        }
        self.files.store(Arc::new(tables));
    }

    /// Serves `keys` (preferred first) for SNI `server_name` on every TLS listener from
    /// the next handshake on, replacing whatever was installed for it; connections
    /// already open keep theirs.
    pub fn install(&self, server_name: &str, keys: Vec<Arc<CertifiedKey>>) {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        let bundle = Arc::new(CertBundle::new(keys));
        self.installed.rcu(|map| {
            let mut map = HashMap::clone(map);
            map.insert(name.clone(), Arc::clone(&bundle));
            map
        });
    }

    /// Stops serving what was installed for `server_name` (the files' certificate, if
    /// any, answers again). Whether there was one.
    pub fn remove(&self, server_name: &str) -> bool {
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        let mut removed = false;
        self.installed.rcu(|map| {
            let mut map = HashMap::clone(map);
            removed = map.remove(&name).is_some();
            map
        });
        removed
    }

    /// The certificates a client asking for `sni` on `listener` is offered: an
    /// installed one for that exact name, else the listener's SNI map.
    pub fn certificates_for(
        &self,
        listener: &SocketAddr,
        sni: Option<&str>,
    ) -> Option<Arc<CertBundle>> {
        if let Some(sni) = sni {
            let installed = self.installed.load();
            if !installed.is_empty() {
                if let Some(bundle) = installed.get(normalize_host(sni).as_ref()) {
                    return Some(Arc::clone(bundle));
                }
            }
        }
        let files = self.files.load();
        let bundle = files.get(listener)?.find(sni)?;
        if let Some(name) = &bundle.installed_as {
            if let Some(installed) = self.installed.load().get(name.as_ref()) {
                return Some(Arc::clone(installed));
            }
        }
        Some(Arc::clone(bundle))
    }

    /// The rustls resolver of the TLS listener at `listener`.
    pub fn resolver(self: &Arc<Self>, listener: SocketAddr) -> Arc<dyn ResolvesServerCert> {
        Arc::new(Resolver {
            store: Arc::clone(self),
            listener,
        })
    }
}

/// rustls asks this for the certificate of each handshake.
#[derive(Debug)]
struct Resolver {
    store: Arc<CertStore>,
    listener: SocketAddr,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.store
            .certificates_for(&self.listener, hello.server_name())?
            .choose(&hello)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerName;
    use rustls::pki_types::CertificateDer;

    /// A bundle told apart by its (fake) certificate bytes; never used for a handshake.
    fn bundle(tag: u8) -> Arc<CertBundle> {
        #[derive(Debug)]
        struct NoKey;
        impl rustls::sign::SigningKey for NoKey {
            fn choose_scheme(
                &self,
                _: &[rustls::SignatureScheme],
            ) -> Option<Box<dyn rustls::sign::Signer>> {
                None
            }
            fn algorithm(&self) -> rustls::SignatureAlgorithm {
                rustls::SignatureAlgorithm::ECDSA
            }
        }
        let cert = CertifiedKey::new(vec![CertificateDer::from(vec![tag])], Arc::new(NoKey));
        Arc::new(CertBundle::new(vec![Arc::new(cert)]))
    }

    fn tag(b: Option<Arc<CertBundle>>) -> Option<u8> {
        b.map(|b| b.keys()[0].cert[0].as_ref()[0])
    }

    fn names(list: &[ServerName]) -> Names {
        Names::new(list).unwrap()
    }

    #[test]
    fn sni_follows_server_name_rules_then_the_default() {
        let map = SniMap::new(
            vec![
                (
                    names(&[ServerName::Regex(r"^api\d+\.test$".into())]),
                    bundle(1),
                ),
                (
                    names(&[ServerName::Suffix(".example.test".into())]),
                    bundle(2),
                ),
                (
                    names(&[ServerName::Exact("www.example.test".into())]),
                    bundle(3),
                ),
            ],
            Some(bundle(9)),
        );
        let find = |sni| tag(map.find(sni).cloned());
        assert_eq!(
            find(Some("www.example.test")),
            Some(3),
            "exact beats a wildcard"
        );
        assert_eq!(find(Some("WWW.Example.Test.")), Some(3));
        assert_eq!(find(Some("x.example.test")), Some(2));
        assert_eq!(find(Some("api7.test")), Some(1));
        assert_eq!(find(Some("elsewhere.test")), Some(9));
        assert_eq!(find(None), Some(9));
    }

    #[test]
    fn installed_certificates_win_for_their_name_until_removed_and_survive_reloads() {
        let listener: SocketAddr = "127.0.0.1:443".parse().unwrap();
        let files =
            |t| SniTables::from([(listener, Arc::new(SniMap::new(Vec::new(), Some(bundle(t)))))]);
        let store = CertStore::new(files(1));
        let installed = bundle(5).keys().to_vec();
        store.install("Site.Test", installed);
        assert_eq!(
            tag(store.certificates_for(&listener, Some("site.test"))),
            Some(5)
        );
        assert_eq!(
            tag(store.certificates_for(&listener, Some("other.test"))),
            Some(1)
        );
        assert_eq!(tag(store.certificates_for(&listener, None)), Some(1));
        store.replace_files(files(2));
        assert_eq!(
            tag(store.certificates_for(&listener, Some("site.test"))),
            Some(5)
        );
        assert_eq!(tag(store.certificates_for(&listener, None)), Some(2));
        assert!(store.remove("site.test"));
        assert!(!store.remove("site.test"));
        assert_eq!(
            tag(store.certificates_for(&listener, Some("site.test"))),
            Some(2)
        );
        // A stand-in gives way to what is installed under its name, for any SNI.
        let stand_in = Arc::new(CertBundle::stand_in(bundle(7).keys().to_vec(), "acme:le:a"));
        store.replace_files(SniTables::from([(
            listener,
            Arc::new(SniMap::new(Vec::new(), Some(stand_in))),
        )]));
        assert_eq!(tag(store.certificates_for(&listener, None)), Some(7));
        store.install("acme:le:a", bundle(8).keys().to_vec());
        assert_eq!(tag(store.certificates_for(&listener, None)), Some(8));
        assert_eq!(
            tag(store.certificates_for(&listener, Some("x.test"))),
            Some(8)
        );
        store.remove("acme:le:a");
        store.replace_files(files(2));
        // A listener the new config dropped keeps what it had.
        let other: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        store.replace_files(SniTables::from([(
            other,
            Arc::new(SniMap::new(Vec::new(), Some(bundle(3)))),
        )]));
        assert_eq!(tag(store.certificates_for(&listener, None)), Some(2));
        assert_eq!(tag(store.certificates_for(&other, None)), Some(3));
    }
}
