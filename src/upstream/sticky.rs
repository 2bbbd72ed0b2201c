//! Session affinity by cookie, as nginx 1.29.6's `sticky cookie`
//! (`ngx_http_upstream_sticky_module.c`): the value that names a server, the
//! `Set-Cookie` line in nginx's attribute order and date format, and the lookup of a
//! cookie value among a pool's servers. Pure functions, no per-process state, so every
//! pinlb replica (and nginx) gives a server the same value.
//!
//! The value (nginx's "server ID") is the `route=` of the `server` line if given,
//! otherwise the lowercase hex MD5 of the server's address as nginx prints it
//! (`ngx_sock_ntop`: `127.0.0.1:8080`, `[2001:db8::1]:8080`). A name that resolves to
//! several addresses gives each address its own value.

use crate::config::StickyConf;
use crate::net::ngx_addr::write_ip_port;
use md5::{Digest, Md5};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// Length of a hashed value (MD5 in hex), also the longest `route=`.
pub const SID_LEN: usize = 32;

/// nginx's `expires=max` (Thu, 31 Dec 2037 23:55:55 GMT as a Unix time); nginx compares
/// the configured seconds with it, so that many seconds also mean `max`.
pub const MAX_EXPIRES: i64 = 2_145_916_555;

/// What nginx writes for `expires=max`.
const MAX_EXPIRES_ATTRS: &str = "; expires=Thu, 31-Dec-37 23:55:55 GMT; max-age=315360000";

/// The value of a server at `addr`: the hex MD5 of `ip:port` as nginx prints it.
pub fn sid_for_addr(addr: SocketAddr) -> String {
    let mut name = String::with_capacity(48);
    // Writing to a String cannot fail.
    let _ = write_ip_port(&mut name, addr.ip(), addr.port());
    let mut out = String::with_capacity(SID_LEN);
    for b in Md5::digest(name.as_bytes()) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The sticky cookie of one pool, ready for requests: its name, the `Set-Cookie`
/// attributes, and which server each value names.
#[derive(Debug)]
pub struct Sticky {
    pub cookie: String,
    conf: StickyConf,
    by_sid: HashMap<Box<[u8]>, usize>,
}

impl Sticky {
    /// `sids[i]` is the value of server `i` of the pool. Two servers with one value (one
    /// address twice, or one `route=` twice) share it: the first is found.
    pub fn new(conf: &StickyConf, sids: &[&str]) -> Sticky {
        let mut by_sid = HashMap::with_capacity(sids.len());
        for (i, sid) in sids.iter().enumerate() {
            by_sid
                .entry(sid.as_bytes().to_vec().into_boxed_slice())
                .or_insert(i);
        }
        Sticky {
            cookie: conf.cookie.clone(),
            conf: conf.clone(),
            by_sid,
        }
    }

    /// The server a cookie value names, compared byte for byte as nginx does
    /// (`ngx_http_upstream_get_rr_peer_by_sid`). Forged or stale values name nothing.
    pub fn find(&self, value: &[u8]) -> Option<usize> {
        if value.is_empty() || value.len() > SID_LEN {
            return None;
        }
        self.by_sid.get(value).copied()
    }

    /// Whether every response must carry the cookie: with `expires`, each one renews the
    /// lifetime, as nginx's does. A session cookie is only sent when the request did not
    /// already carry the value of the server that answered.
    pub fn renews(&self) -> bool {
        self.conf.expires.is_some()
    }

    /// The `Set-Cookie` value for a response from the server with `sid`, `now` being the
    /// Unix time, in nginx's order: `NAME=SID`, `; expires=...; max-age=N`, `; domain=`,
    /// `; httponly`, `; secure`, `; samesite=`, `; path=`.
    pub fn set_cookie(&self, sid: &str, now: i64) -> String {
        let c = &self.conf;
        let mut s = String::with_capacity(c.cookie.len() + sid.len() + 128);
        s.push_str(&c.cookie);
        s.push('=');
        s.push_str(sid);
        match c.expires {
            None => {}
            Some(MAX_EXPIRES) => s.push_str(MAX_EXPIRES_ATTRS),
            Some(n) => {
                s.push_str("; expires=");
                s.push_str(&cookie_time(now.saturating_add(n)));
                let _ = write!(s, "; max-age={n}");
            }
        }
        if let Some(d) = c.domain.as_deref().filter(|d| !d.is_empty()) {
            s.push_str("; domain=");
            s.push_str(d);
        }
        if c.httponly {
            s.push_str("; httponly");
        }
        if c.secure {
            s.push_str("; secure");
        }
        if let Some(v) = c.samesite.as_deref().filter(|v| !v.is_empty()) {
            s.push_str("; samesite=");
            s.push_str(v);
        }
        if let Some(p) = &c.path {
            s.push_str("; path=");
            s.push_str(p);
        }
        s
    }
}

/// nginx's `ngx_gmtime()`: negative times are 0, times past 9999-12-31 23:59:59 are
/// clamped to it. (year, month 1..=12, day, hour, min, sec, weekday 0 = Sunday).
fn gmtime(t: i64) -> (i64, usize, i64, i64, i64, i64, usize) {
    let t = t.max(0);
    let mut days = t / 86400;
    let mut sec = t % 86400;
    if days > 2_932_896 {
        days = 2_932_896;
        sec = 86399;
    }
    let wday = ((4 + days) % 7) as usize;
    let hour = sec / 3600;
    sec %= 3600;
    let min = sec / 60;
    sec %= 60;
    // Gauss' formula, days since March 1, 1 BC, as in the C code.
    let days = days - (31 + 28) + 719_527;
    let mut year = (days + 2) * 400 / (365 * 400 + 100 - 4 + 1);
    let mut yday = days - (365 * year + year / 4 - year / 100 + year / 400);
    if yday < 0 {
        let leap = i64::from(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0));
        yday += 365 + leap;
        year -= 1;
    }
    let mut mon = (yday + 31) * 10 / 306;
    let mday = yday - (367 * mon / 12 - 30) + 1;
    if yday >= 306 {
        year += 1;
        mon -= 10;
    } else {
        mon += 2;
    }
    (year, mon.clamp(1, 12) as usize, mday, hour, min, sec, wday)
}

/// nginx's `ngx_http_cookie_time()`: `Thu, 31-Dec-37 23:55:55 GMT`, a two-digit year up
/// to 2037 and four digits after.
pub fn cookie_time(t: i64) -> String {
    const WEEK: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, mon, mday, hour, min, sec, wday) = gmtime(t);
    let (w, m) = (WEEK[wday % 7], MONTHS[(mon - 1) % 12]);
    if year > 2037 {
        format!("{w}, {mday:02}-{m}-{year} {hour:02}:{min:02}:{sec:02} GMT")
    } else {
        format!(
            "{w}, {mday:02}-{m}-{:02} {hour:02}:{min:02}:{sec:02} GMT",
            year % 100
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn conf(expires: Option<i64>) -> StickyConf {
        StickyConf {
            cookie: "srv_id".into(),
            expires,
            domain: None,
            path: None,
            httponly: false,
            secure: false,
            samesite: None,
            origin: Origin::Builtin,
        }
    }

    /// Reference values computed outside this code: `printf '127.0.0.1:8080' | md5sum`.
    #[test]
    fn values_are_the_md5_of_the_address_as_nginx_prints_it() {
        let sid = |a: &str| sid_for_addr(a.parse().expect("addr"));
        assert_eq!(sid("127.0.0.1:8080"), "5958c386bf5e9109ac10d2a628645aea");
        assert_eq!(sid("[::1]:8080"), "1c2e56fe441d2a91a692b6e4ac8b5c9b");
        assert_eq!(sid("127.0.0.1:80"), "cef54f47984626c9efbf070c50bfad1b");
    }

    #[test]
    fn ipv6_text_is_nginx_s() {
        let t = |a: &str| crate::net::ngx_addr::Ipv6Text(a.parse().expect("v6")).to_string();
        assert_eq!(t("::1"), "::1");
        assert_eq!(t("2001:db8::1"), "2001:db8::1");
        assert_eq!(t("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(t("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(t("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
    }

    #[test]
    fn find_is_exact_and_forged_values_name_nothing() {
        let s = Sticky::new(&conf(None), &["5958c386bf5e9109ac10d2a628645aea", "a"]);
        assert_eq!(s.find(b"a"), Some(1));
        assert_eq!(s.find(b"5958c386bf5e9109ac10d2a628645aea"), Some(0));
        assert_eq!(s.find(b"5958C386BF5E9109AC10D2A628645AEA"), None);
        assert_eq!(s.find(b""), None);
        assert_eq!(s.find(&[b'x'; 4096]), None);
        assert_eq!(s.find(b"../../etc/passwd\0"), None);
    }

    /// Expected strings computed with GNU date:
    /// `date -u -d @1700000000 '+%a, %d-%b-%y %H:%M:%S GMT'`.
    #[test]
    fn cookie_time_known_values() {
        assert_eq!(cookie_time(0), "Thu, 01-Jan-70 00:00:00 GMT");
        assert_eq!(cookie_time(-5), "Thu, 01-Jan-70 00:00:00 GMT");
        assert_eq!(cookie_time(1_700_000_000), "Tue, 14-Nov-23 22:13:20 GMT");
        assert_eq!(cookie_time(951_782_400), "Tue, 29-Feb-00 00:00:00 GMT");
        assert_eq!(cookie_time(MAX_EXPIRES), "Thu, 31-Dec-37 23:55:55 GMT");
        assert_eq!(cookie_time(2_145_916_800), "Fri, 01-Jan-2038 00:00:00 GMT");
        assert_eq!(cookie_time(i64::MAX), "Fri, 31-Dec-9999 23:59:59 GMT");
    }

    #[test]
    fn set_cookie_keeps_nginx_s_attribute_order() {
        let mut c = conf(Some(3600));
        c.path = Some("/app".into());
        c.secure = true;
        c.samesite = Some("Lax".into());
        c.httponly = true;
        c.domain = Some(".example.com".into());
        let s = Sticky::new(&c, &[]);
        assert_eq!(
            s.set_cookie("5958c386bf5e9109ac10d2a628645aea", 1_700_000_000),
            "srv_id=5958c386bf5e9109ac10d2a628645aea; expires=Tue, 14-Nov-23 23:13:20 GMT; max-age=3600; domain=.example.com; httponly; secure; samesite=Lax; path=/app"
        );
        let max = Sticky::new(&conf(Some(MAX_EXPIRES)), &[]);
        assert_eq!(
            max.set_cookie("a", 0),
            "srv_id=a; expires=Thu, 31-Dec-37 23:55:55 GMT; max-age=315360000"
        );
        let session = Sticky::new(&conf(None), &[]);
        assert_eq!(session.set_cookie("a", 0), "srv_id=a");
        assert!(!session.renews() && max.renews());
    }
}
