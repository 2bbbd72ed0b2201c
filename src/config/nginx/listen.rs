//! nginx's `listen` sockets: one per address (a wildcard address covers the specific ones
//! of its port), `ssl`, `http2` and `proxy_protocol` belonging to the socket, and each TLS socket's
//! handshake settings from its default server.

use super::translate::{Nginx, Translator, at};
use crate::config::{ConfigError, Listener};
use std::net::SocketAddr;

/// What one `listen` directive says about its socket besides the address.
#[derive(Clone, Copy, Default)]
pub struct ListenParams {
    pub ssl: bool,
    pub http2: bool,
    pub proxy_protocol: bool,
}

impl Translator {
    /// Adds a listener, keeping nginx's rule that a wildcard address on a port covers
    /// the specific addresses of that port (one socket serves both). `ssl`, `http2` and
    /// `proxy_protocol` belong to the socket: any `listen` of it that says so makes it so,
    /// as in nginx; but addresses that share a socket must agree on `proxy_protocol`, since
    /// one socket cannot both expect and not expect a PROXY header.
    pub fn listen(
        &mut self,
        addr: SocketAddr,
        d: &Nginx,
        params: ListenParams,
    ) -> Result<(), ConfigError> {
        let covered = |a: &SocketAddr| a.port() == addr.port() && a.is_ipv4() == addr.is_ipv4();
        let tls = |ssl: bool| {
            ssl.then(|| crate::config::ListenerTls {
                origin: d.origin(),
                ..Default::default()
            })
        };
        let disagree = || {
            at(
                d,
                format!(
                    "\"proxy_protocol\" must be set on all or none of the addresses that share the socket of {addr}"
                ),
            )
        };
        if let Some(l) = self.listeners.iter_mut().find(|l| l.addr == addr) {
            l.proxy_protocol |= params.proxy_protocol;
            if l.tls.is_none() {
                l.tls = tls(params.ssl);
            }
            l.http2 |= params.http2;
            return Ok(());
        }
        if let Some(wild) = self
            .listeners
            .iter_mut()
            .find(|l| covered(&l.addr) && l.addr.ip().is_unspecified())
        {
            if wild.proxy_protocol != params.proxy_protocol {
                return Err(disagree());
            }
            if wild.tls.is_none() {
                wild.tls = tls(params.ssl);
            }
            wild.http2 |= params.http2;
            return Ok(());
        }
        let (mut ssl, mut http2) = (params.ssl, params.http2);
        if addr.ip().is_unspecified() {
            for l in self.listeners.iter().filter(|l| covered(&l.addr)) {
                if l.proxy_protocol != params.proxy_protocol {
                    return Err(disagree());
                }
                ssl |= l.tls.is_some();
                http2 |= l.http2;
            }
            self.listeners.retain(|l| !covered(&l.addr));
        }
        self.listeners.push(Listener {
            addr,
            proxy_protocol: params.proxy_protocol,
            tls: tls(ssl),
            http2,
            origin: d.origin(),
        });
        Ok(())
    }

    /// Each TLS listener takes its handshake settings from its default server, and every
    /// server on it needs a certificate; `http2 on` in a server turns HTTP/2 on for the
    /// listeners it is on.
    pub(super) fn finish_listeners(&mut self) -> Result<(), ConfigError> {
        for l in &mut self.listeners {
            let probe = l.clone();
            let serves = |a: &SocketAddr| probe.serves(a);
            let on_it: Vec<usize> = (0..self.virtual_servers.len())
                .filter(|&i| self.virtual_servers[i].listen.iter().any(serves))
                .collect();
            let default = on_it
                .iter()
                .copied()
                .find(|&i| self.virtual_servers[i].default_for.iter().any(serves))
                .or(on_it.first().copied());
            for &i in &on_it {
                l.http2 |= self.server_tls[i].level.http2 == Some(true);
            }
            let Some(tls) = &mut l.tls else { continue };
            if let Some(i) = default {
                *tls = self.server_tls[i].level.listener(tls.origin.clone());
            }
            for &i in &on_it {
                if self.virtual_servers[i].certificates.is_empty()
                    && !self.virtual_servers[i].acme_serves
                {
                    let origin = self.server_tls[i]
                        .listens
                        .iter()
                        .find(|(a, _)| serves(a))
                        .map_or_else(
                            || self.virtual_servers[i].origin.clone(),
                            |(_, o)| o.clone(),
                        );
                    return Err(ConfigError::invalid(
                        &self.main_file,
                        &origin,
                        "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive",
                    ));
                }
            }
        }
        Ok(())
    }
}
