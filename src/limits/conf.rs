//! Parsing of the `limit_req_zone`, `limit_req`, `limit_conn_zone` and `limit_conn`
//! directive arguments, with nginx's rules and error wording (`ngx_http_limit_req_zone`,
//! `ngx_http_limit_req`, `ngx_http_limit_conn_zone`, `ngx_http_limit_conn`,
//! `ngx_parse_size`, `ngx_atoi`). Arguments are the directive's words after its name, as
//! the config tokenizer produced them (quotes removed). Checking that a zone named in
//! `limit_req`/`limit_conn` exists, and rejecting the same zone twice in one context
//! (nginx: "is duplicate"), is left to the caller, which sees all directives.

use std::fmt;

use super::MIN_ZONE_SIZE;
use super::req::DelayPolicy;

/// A configuration error; `Display` gives nginx's message (without its "in FILE:LINE").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError(pub String);

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfError {}

fn err(msg: String) -> ConfError {
    ConfError(msg)
}

/// `limit_req_zone KEY zone=NAME:SIZE rate=RATE;`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqZoneConf {
    /// The key expression, unparsed (`$binary_remote_addr`).
    pub key: String,
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Milli-requests per second: `rate * 1000 / 60` for `r/m`, truncated as nginx does
    /// (`1r/m` is 16). No default in nginx's docs, but a zone without `rate=` gets 1r/s.
    pub rate: u64,
}

/// `limit_req zone=NAME [burst=N] [nodelay | delay=N];`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqConf {
    pub zone: String,
    /// Default 0.
    pub burst: u64,
    /// Default [`DelayPolicy::Delay`].
    pub delay: DelayPolicy,
}

/// `limit_conn_zone KEY zone=NAME:SIZE;`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnZoneConf {
    pub key: String,
    pub name: String,
    pub size: u64,
}

/// `limit_conn ZONE NUMBER;`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnConf {
    pub zone: String,
    /// 1..=65535.
    pub limit: u32,
}

/// `ngx_atoi`: decimal digits only, no sign, no overflow.
fn atoi(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|&v| v <= i64::MAX as u64)
}

/// `ngx_parse_size`: a byte count with an optional `k`/`K` (KiB) or `m`/`M` (MiB) suffix.
/// nginx 1.22 has no `g` here.
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, scale) = if let Some(d) = s.strip_suffix(['k', 'K']) {
        (d, 1024)
    } else if let Some(d) = s.strip_suffix(['m', 'M']) {
        (d, 1024 * 1024)
    } else {
        (s, 1)
    };
    atoi(digits)?
        .checked_mul(scale)
        .filter(|&v| v <= i64::MAX as u64)
}

fn arity(directive: &str, ok: bool) -> Result<(), ConfError> {
    if ok {
        Ok(())
    } else {
        Err(err(format!(
            "invalid number of arguments in \"{directive}\" directive"
        )))
    }
}

/// `zone=NAME:SIZE` of the `*_zone` directives; `spec` is the part after `zone=`.
fn parse_zone_param(param: &str, spec: &str) -> Result<(String, u64), ConfError> {
    let Some((name, size)) = spec.split_once(':') else {
        return Err(err(format!("invalid zone size \"{param}\"")));
    };
    let size = parse_size(size).ok_or_else(|| err(format!("invalid zone size \"{param}\"")))?;
    if size < MIN_ZONE_SIZE {
        return Err(err(format!("zone \"{param}\" is too small")));
    }
    Ok((name.to_string(), size))
}

/// `rate=N`, `rate=Nr/s` or `rate=Nr/m` (a bare number is per second); `value` is the
/// part after `rate=`.
fn parse_rate_param(param: &str, value: &str) -> Result<u64, ConfError> {
    let (number, scale) = if let Some(n) = value.strip_suffix("r/s") {
        (n, 1)
    } else if let Some(n) = value.strip_suffix("r/m") {
        (n, 60)
    } else {
        (value, 1)
    };
    atoi(number)
        .filter(|&r| r > 0)
        .and_then(|r| r.checked_mul(1000))
        .map(|r| r / scale)
        .ok_or_else(|| err(format!("invalid rate \"{param}\"")))
}

/// A rate as written after `rate=` (`10r/s`, `30r/m`, or a bare number per second), in
/// milli-requests per second; `None` if nginx would refuse it.
pub fn parse_rate(value: &str) -> Option<u64> {
    parse_rate_param(value, value).ok()
}

/// Parses `limit_req_zone`'s arguments (`KEY zone=NAME:SIZE rate=RATE`, any order after
/// the key; a repeated parameter overrides).
pub fn parse_limit_req_zone(args: &[&str]) -> Result<ReqZoneConf, ConfError> {
    arity("limit_req_zone", args.len() == 3)?;
    let mut conf = ReqZoneConf {
        key: args[0].to_string(),
        name: String::new(),
        size: 0,
        rate: 1000,
    };
    for &param in &args[1..] {
        if let Some(spec) = param.strip_prefix("zone=") {
            (conf.name, conf.size) = parse_zone_param(param, spec)?;
        } else if let Some(value) = param.strip_prefix("rate=") {
            conf.rate = parse_rate_param(param, value)?;
        } else {
            return Err(err(format!("invalid parameter \"{param}\"")));
        }
    }
    if conf.name.is_empty() {
        return Err(err("\"limit_req_zone\" must have \"zone\" parameter".into()));
    }
    Ok(conf)
}

/// Parses `limit_req`'s arguments. nginx refuses `burst=0` and `delay=0` ("invalid burst
/// value"); omit them instead. `nodelay` and `delay=N` override each other, last wins.
pub fn parse_limit_req(args: &[&str]) -> Result<ReqConf, ConfError> {
    arity("limit_req", (1..=3).contains(&args.len()))?;
    let mut zone = None;
    let mut conf = ReqConf {
        zone: String::new(),
        burst: 0,
        delay: DelayPolicy::Delay,
    };
    for &param in args {
        if let Some(name) = param.strip_prefix("zone=") {
            zone = Some(name.to_string());
        } else if let Some(n) = param.strip_prefix("burst=") {
            conf.burst = atoi(n)
                .filter(|&b| b > 0)
                .ok_or_else(|| err(format!("invalid burst value \"{param}\"")))?;
        } else if let Some(n) = param.strip_prefix("delay=") {
            let n = atoi(n)
                .filter(|&d| d > 0)
                .ok_or_else(|| err(format!("invalid delay value \"{param}\"")))?;
            conf.delay = DelayPolicy::After(n);
        } else if param == "nodelay" {
            conf.delay = DelayPolicy::NoDelay;
        } else {
            return Err(err(format!("invalid parameter \"{param}\"")));
        }
    }
    match zone {
        Some(name) if !name.is_empty() => conf.zone = name,
        _ => return Err(err("\"limit_req\" must have \"zone\" parameter".into())),
    }
    Ok(conf)
}

/// Parses `limit_conn_zone`'s arguments (`KEY zone=NAME:SIZE`).
pub fn parse_limit_conn_zone(args: &[&str]) -> Result<ConnZoneConf, ConfError> {
    arity("limit_conn_zone", args.len() == 2)?;
    let param = args[1];
    let Some(spec) = param.strip_prefix("zone=") else {
        return Err(err(format!("invalid parameter \"{param}\"")));
    };
    let (name, size) = parse_zone_param(param, spec)?;
    if name.is_empty() {
        return Err(err(
            "\"limit_conn_zone\" must have \"zone\" parameter".into()
        ));
    }
    Ok(ConnZoneConf {
        key: args[0].to_string(),
        name,
        size,
    })
}

/// Parses `limit_conn`'s arguments (`ZONE NUMBER`).
pub fn parse_limit_conn(args: &[&str]) -> Result<ConnConf, ConfError> {
    arity("limit_conn", args.len() == 2)?;
    let n = atoi(args[1])
        .filter(|&n| n > 0)
        .ok_or_else(|| err(format!("invalid number of connections \"{}\"", args[1])))?;
    let limit = u32::try_from(n)
        .ok()
        .filter(|&n| n <= 65535)
        .ok_or_else(|| err("connection limit must be less 65536".into()))?;
    Ok(ConnConf {
        zone: args[0].to_string(),
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<T: fmt::Debug>(r: Result<T, ConfError>) -> String {
        r.unwrap_err().0
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("32768"), Some(32768));
        for bad in [
            "",
            "k",
            "1g",
            "-1",
            "+1",
            "1.5m",
            " 1",
            "99999999999999999999",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn req_zone() {
        let z =
            parse_limit_req_zone(&["$binary_remote_addr", "zone=one:10m", "rate=10r/s"]).unwrap();
        assert_eq!(
            z,
            ReqZoneConf {
                key: "$binary_remote_addr".into(),
                name: "one".into(),
                size: 10 << 20,
                rate: 10_000
            }
        );
        let rate = |r: &str| parse_limit_req_zone(&["$k", "zone=z:1m", r]).map(|z| z.rate);
        assert_eq!(rate("rate=30r/m"), Ok(500));
        assert_eq!(rate("rate=1r/m"), Ok(16));
        assert_eq!(rate("rate=7"), Ok(7000));
        for bad in [
            "rate=0r/s",
            "rate=r/s",
            "rate=",
            "rate=1r/h",
            "rate=-1r/s",
            "rate=1.5r/s",
        ] {
            assert_eq!(msg(rate(bad)), format!("invalid rate \"{bad}\""));
        }
        let zone = |z: &str| parse_limit_req_zone(&["$k", z, "rate=1r/s"]);
        assert_eq!(msg(zone("zone=one")), "invalid zone size \"zone=one\"");
        assert_eq!(
            msg(zone("zone=one:10x")),
            "invalid zone size \"zone=one:10x\""
        );
        assert_eq!(
            msg(zone("zone=one:31k")),
            "zone \"zone=one:31k\" is too small"
        );
        assert_eq!(zone("zone=one:32k").unwrap().size, 32768);
        assert_eq!(
            msg(zone("zone=:1m")),
            "\"limit_req_zone\" must have \"zone\" parameter"
        );
        assert_eq!(
            msg(parse_limit_req_zone(&["$k", "rate=1r/s", "rate=2r/s"])),
            "\"limit_req_zone\" must have \"zone\" parameter"
        );
        assert_eq!(msg(zone("burst=5")), "invalid parameter \"burst=5\"");
        assert_eq!(
            msg(parse_limit_req_zone(&["$k", "zone=a:1m"])),
            "invalid number of arguments in \"limit_req_zone\" directive"
        );
    }

    #[test]
    fn req() {
        assert_eq!(
            parse_limit_req(&["zone=one"]).unwrap(),
            ReqConf {
                zone: "one".into(),
                burst: 0,
                delay: DelayPolicy::Delay
            }
        );
        let r = parse_limit_req(&["zone=one", "burst=5", "nodelay"]).unwrap();
        assert_eq!((r.burst, r.delay), (5, DelayPolicy::NoDelay));
        let r = parse_limit_req(&["burst=12", "delay=8", "zone=ip"]).unwrap();
        assert_eq!(
            (r.zone.as_str(), r.burst, r.delay),
            ("ip", 12, DelayPolicy::After(8))
        );
        let r = parse_limit_req(&["zone=one", "nodelay", "delay=3"]).unwrap();
        assert_eq!(r.delay, DelayPolicy::After(3));
        assert_eq!(
            msg(parse_limit_req(&["zone=one", "burst=0"])),
            "invalid burst value \"burst=0\""
        );
        assert_eq!(
            msg(parse_limit_req(&["zone=one", "delay=x"])),
            "invalid delay value \"delay=x\""
        );
        assert_eq!(
            msg(parse_limit_req(&["zone=one", "nodelays"])),
            "invalid parameter \"nodelays\""
        );
        assert_eq!(
            msg(parse_limit_req(&["burst=5"])),
            "\"limit_req\" must have \"zone\" parameter"
        );
        assert_eq!(
            msg(parse_limit_req(&[])),
            "invalid number of arguments in \"limit_req\" directive"
        );
    }

    #[test]
    fn conn() {
        assert_eq!(
            parse_limit_conn_zone(&["$binary_remote_addr", "zone=addr:10m"]).unwrap(),
            ConnZoneConf {
                key: "$binary_remote_addr".into(),
                name: "addr".into(),
                size: 10 << 20
            }
        );
        assert_eq!(
            msg(parse_limit_conn_zone(&["$k", "zone=addr"])),
            "invalid zone size \"zone=addr\""
        );
        assert_eq!(
            msg(parse_limit_conn_zone(&["$k", "size=1m"])),
            "invalid parameter \"size=1m\""
        );
        assert_eq!(
            parse_limit_conn(&["addr", "1"]).unwrap(),
            ConnConf {
                zone: "addr".into(),
                limit: 1
            }
        );
        assert_eq!(parse_limit_conn(&["addr", "65535"]).unwrap().limit, 65535);
        assert_eq!(
            msg(parse_limit_conn(&["addr", "65536"])),
            "connection limit must be less 65536"
        );
        assert_eq!(
            msg(parse_limit_conn(&["addr", "0"])),
            "invalid number of connections \"0\""
        );
        assert_eq!(
            msg(parse_limit_conn(&["addr"])),
            "invalid number of arguments in \"limit_conn\" directive"
        );
    }
}
