//! Variables defined in the `http` context: nginx `map` (a value by key) and `geo` (a value
//! by the network that holds an address).

use super::translate::{Nginx, Translator, at};
use crate::config::{ConfigError, GeoEntry, GeoVar, MapEntry, MapKey, MapVar};
use crate::net::geo::parse_geo_header;

/// `map SOURCE $variable { key value; ... }`.
pub fn map(t: &mut Translator, d: &Nginx) -> Result<(), ConfigError> {
    if d.args().len() != 2 {
        return Err(at(d, "invalid number of arguments in \"map\" directive"));
    }
    let variable = d.args()[1]
        .strip_prefix('$')
        .filter(|v| !v.is_empty())
        .ok_or_else(|| at(d, format!("invalid variable name \"{}\"", d.args()[1])))?
        .to_string();
    defined_once(t, d, &variable)?;
    let mut map = MapVar {
        source: d.args()[0].clone(),
        variable,
        entries: Vec::new(),
        default: String::new(),
        origin: d.origin(),
    };
    for e in d.block()?.iter().map(Nginx::new) {
        let key = e.name();
        match (key, e.args()) {
            ("hostnames" | "volatile", []) => {
                return Err(at(&e, format!("\"{key}\" in \"map\" is not supported")));
            }
            ("default", [value]) => map.default = value.clone(),
            (_, [value]) => {
                let key = match key.strip_prefix("~*") {
                    Some(re) => MapKey::Regex {
                        pattern: re.into(),
                        case_insensitive: true,
                    },
                    None => match key.strip_prefix('~') {
                        Some(re) => MapKey::Regex {
                            pattern: re.into(),
                            case_insensitive: false,
                        },
                        None => MapKey::Exact(key.strip_prefix('\\').unwrap_or(key).into()),
                    },
                };
                map.entries.push(MapEntry {
                    key,
                    value: value.clone(),
                });
            }
            _ => return Err(at(&e, "invalid number of the map parameters")),
        }
    }
    t.maps.push(map);
    Ok(())
}

/// `geo [$source] $variable { default V; CIDR V; delete CIDR; proxy CIDR; ... }`. The
/// entries are kept as written; what they mean is checked when the config is compiled.
pub fn geo(t: &mut Translator, d: &Nginx) -> Result<(), ConfigError> {
    if !(1..=2).contains(&d.args().len()) {
        return Err(at(d, "invalid number of arguments in \"geo\" directive"));
    }
    let header = parse_geo_header(d.args()).map_err(|e| at(d, e.to_string()))?;
    defined_once(t, d, &header.variable)?;
    let mut entries = Vec::new();
    for e in d.block()?.iter().map(Nginx::new) {
        if e.directive().block.is_some() {
            return Err(at(&e, "invalid number of the geo parameters"));
        }
        let mut words = vec![e.name().to_string()];
        words.extend(e.args().iter().cloned());
        entries.push(GeoEntry {
            words,
            origin: e.origin(),
        });
    }
    t.geos.push(GeoVar {
        source: header.source,
        variable: header.variable,
        entries,
        origin: d.origin(),
    });
    Ok(())
}

/// A variable may be defined once, by a `map` or a `geo`.
fn defined_once(t: &Translator, d: &Nginx, variable: &str) -> Result<(), ConfigError> {
    let maps = t.maps.iter().map(|m| m.variable.as_str());
    let geos = t.geos.iter().map(|g| g.variable.as_str());
    if maps.chain(geos).any(|v| v == variable) {
        return Err(at(d, format!("duplicate \"{variable}\" variable")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::nginx::tests::translate_str;
    use crate::config::{Action, PinSource};

    /// The idiom for pins from some addresses only: `geo`, then a `map` over it, then
    /// `if`s on the mapped variable; with `pinlb_pin_secret` inherited from `http`.
    #[test]
    fn geo_map_and_variable_pins_translate() {
        let c = translate_str(
            "http {
                pinlb_pin_secret \"0123456789abcdef\";
                geo $pin_allowed { default 0; 10.0.0.0/8 1; proxy 192.0.2.1; }
                geo $arg_ip $from_arg { 127.0.0.1 local; }
                map $pin_allowed $pin_app { 1 $http_app; }
                upstream web { server 10.0.0.1:80; server 10.0.0.2:80; }
                server { listen 8080; merge_slashes off;
                    location / {
                        proxy_pass http://web;
                        if ($pin_app = app2) { proxy_pass http://10.0.0.2:80; }
                    }
                    location /open { pinlb_pin_secret off; proxy_pass http://web; }
                }
            }",
        )
        .unwrap();
        assert_eq!(c.geos.len(), 2);
        assert_eq!(c.geos[0].variable, "pin_allowed");
        assert_eq!(c.geos[0].entries[2].words, ["proxy", "192.0.2.1"]);
        assert_eq!(c.geos[1].source.as_deref(), Some("arg_ip"));
        let vs = &c.virtual_servers[0];
        assert!(!vs.merge_slashes);
        let Action::Proxy(pass) = &vs.routes[0].action else {
            panic!("a proxy route")
        };
        assert_eq!(pass.pins[0].source, PinSource::Variable("$pin_app".into()));
        assert_eq!(pass.pin_secret.as_deref(), Some("0123456789abcdef"));
        let Action::Proxy(open) = &vs.routes[1].action else {
            panic!("a proxy route")
        };
        assert_eq!(open.pin_secret, None);
        // The secret never shows in --print-config.
        let printed = serde_json::to_string(&c).unwrap();
        assert!(!printed.contains("0123456789abcdef"), "{printed}");
        assert!(printed.contains("\"pin_secret\":\"(hidden)\""), "{printed}");
    }

    #[test]
    fn variable_mistakes_are_refused_with_their_line() {
        let err = |body: &str| translate_str(&format!("http {{\n{body}\n}}")).unwrap_err();
        assert_eq!(
            err("map $a $x { }\ngeo $x { }"),
            "duplicate \"x\" variable in /etc/nginx/nginx.conf:3"
        );
        assert_eq!(
            err("geo x { }"),
            "invalid variable name \"x\" in /etc/nginx/nginx.conf:2"
        );
        assert_eq!(
            err("geo $a $b $c { }"),
            "invalid number of arguments in \"geo\" directive in /etc/nginx/nginx.conf:2"
        );
        assert_eq!(
            err("server { merge_slashes maybe; }"),
            "invalid value \"maybe\" in \"merge_slashes\" directive, it must be \"on\" or \"off\" in /etc/nginx/nginx.conf:2"
        );
        assert_eq!(
            err("server { location / { merge_slashes off; return 200; } }"),
            "\"merge_slashes\" directive is not allowed here in /etc/nginx/nginx.conf:2"
        );
        assert_eq!(
            err("server { geo $a { } }"),
            "\"geo\" directive is not allowed here in /etc/nginx/nginx.conf:2"
        );
    }
}
