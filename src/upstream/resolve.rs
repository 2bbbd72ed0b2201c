//! Turning a configured `host:port` into addresses: the system resolver when pinlb starts
//! or reloads, the addresses already known when a runtime is rebuilt for a `resolve`
//! name, an offline stand-in when a config is only checked or printed, and fixed answers
//! in tests.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::{Mutex, PoisonError};

/// Resolves the address of an upstream server.
pub trait Resolve: Send + Sync {
    /// Every address of `host_port` (`app1:80`, `10.0.0.1:80`, `[::1]:80`), in the
    /// resolver's order; an error is nginx's `host not found in upstream "..."`.
    fn resolve(&self, host_port: &str) -> Result<Vec<SocketAddr>, String>;
}

fn not_found(host_port: &str) -> String {
    format!("host not found in upstream \"{host_port}\"")
}

/// The system's resolver (`getaddrinfo`), as nginx uses it for names without `resolve`.
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host_port: &str) -> Result<Vec<SocketAddr>, String> {
        if let Ok(addr) = host_port.parse() {
            return Ok(vec![addr]);
        }
        let mut found: Vec<SocketAddr> = Vec::new();
        for addr in host_port
            .to_socket_addrs()
            .map_err(|_| not_found(host_port))?
        {
            if !found.contains(&addr) {
                found.push(addr);
            }
        }
        match found.is_empty() {
            true => Err(not_found(host_port)),
            false => Ok(found),
        }
    }
}

/// For checking and printing a config without the network: literal addresses as they
/// are, and each distinct host name a placeholder of its own in 0.0.0.0/8 (which no
/// connection can reach) with its port, so that two names are never taken for one server.
#[derive(Default)]
pub struct Offline {
    names: Mutex<Vec<String>>,
}

impl Resolve for Offline {
    fn resolve(&self, host_port: &str) -> Result<Vec<SocketAddr>, String> {
        if let Ok(addr) = host_port.parse() {
            return Ok(vec![addr]);
        }
        let (host, port) = host_port
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| not_found(host_port))?;
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match names.iter().position(|n| n == host) {
            Some(i) => i,
            None => {
                names.push(host.to_string());
                names.len() - 1
            }
        };
        let placeholder = u32::try_from(index + 1).unwrap_or(u32::MAX) & 0x00ff_ffff;
        Ok(vec![SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(placeholder)),
            port,
        )])
    }
}

/// The addresses a running configuration already resolved its names to: what a runtime
/// rebuilt for new addresses of a `resolve` name uses, so that the other names are not
/// looked up again (they are resolved at start and on reload only, as in nginx).
pub struct Remembered {
    names: HashMap<String, SocketAddr>,
}

impl Remembered {
    /// The address of every server of `pools` that is not a `resolve` one.
    pub fn from_pools<'a>(pools: impl Iterator<Item = &'a crate::upstream::Pool>) -> Remembered {
        let names = pools
            .flat_map(|p| p.servers.iter())
            .filter(|s| !s.resolved)
            .map(|s| (s.configured_addr.clone(), s.addr))
            .collect();
        Remembered { names }
    }
}

impl Resolve for Remembered {
    fn resolve(&self, host_port: &str) -> Result<Vec<SocketAddr>, String> {
        if let Ok(addr) = host_port.parse() {
            return Ok(vec![addr]);
        }
        match self.names.get(host_port) {
            Some(addr) => Ok(vec![*addr]),
            None => SystemResolver.resolve(host_port),
        }
    }
}

/// Fixed answers, for tests: names not listed are not found.
#[derive(Default)]
pub struct StaticResolver {
    pub names: HashMap<String, Vec<SocketAddr>>,
}

impl Resolve for StaticResolver {
    fn resolve(&self, host_port: &str) -> Result<Vec<SocketAddr>, String> {
        if let Ok(addr) = host_port.parse() {
            return Ok(vec![addr]);
        }
        self.names
            .get(host_port)
            .filter(|found| !found.is_empty())
            .cloned()
            .ok_or_else(|| not_found(host_port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_addresses_need_no_lookup() {
        for r in [
            &SystemResolver as &dyn Resolve,
            &Offline::default(),
            &StaticResolver::default(),
        ] {
            assert_eq!(
                r.resolve("127.0.0.1:81").unwrap(),
                vec!["127.0.0.1:81".parse().unwrap()]
            );
        }
    }

    #[test]
    fn offline_names_keep_their_port_and_stay_apart() {
        let offline = Offline::default();
        let app1 = offline.resolve("app1:8080").unwrap();
        assert_eq!(app1, vec!["0.0.0.1:8080".parse().unwrap()]);
        assert_eq!(
            offline.resolve("app2:8080").unwrap(),
            vec!["0.0.0.2:8080".parse().unwrap()]
        );
        assert_eq!(offline.resolve("app1:8080").unwrap(), app1);
        assert!(offline.resolve("app1").is_err());
    }

    #[test]
    fn static_answers_and_unknown_names() {
        let mut r = StaticResolver::default();
        r.names
            .insert("app1:80".into(), vec!["10.0.0.1:80".parse().unwrap()]);
        assert_eq!(r.resolve("app1:80").unwrap().len(), 1);
        assert_eq!(
            r.resolve("app2:80").unwrap_err(),
            "host not found in upstream \"app2:80\""
        );
    }
}
