//! Request by request, what nginx and pinlb did differently (status, the server chosen,
//! the request the server received, the response headers the configuration sets), which
//! of those differences the README documents, and the printed report.

use super::corpus::Probe;
use super::replay::Observed;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A difference the README's "How pinlb differs from nginx" explains.
pub struct Documented {
    /// The README's words for it, verbatim (a unit test holds them to the README).
    pub readme: &'static str,
    /// Whether a difference in `field` between nginx's and pinlb's outcome is this one.
    applies: fn(&Probe, &Observed, &Observed, &Diff) -> bool,
}

/// Every documented difference. Anything else is unexpected.
pub static DOCUMENTED: &[Documented] = &[
    Documented {
        readme: "`Connection`, `Upgrade` and other hop-by-hop headers in `proxy_set_header` are \
                 managed by pinlb",
        applies: |_, _, _, diff| {
            // pinlb writes the `Upgrade` it passes in lower case.
            diff.field == "upstream header connection"
                || (diff.field == "upstream header upgrade"
                    && diff.nginx.eq_ignore_ascii_case(&diff.pinlb))
        },
    },
    Documented {
        readme: "upstream connections stay pooled and websocket upgrades always pass",
        applies: |probe, nginx, pinlb, diff| {
            let nginx_passed = nginx.received.iter().any(|r| {
                r.headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("upgrade"))
            });
            // The server answered a plain request through nginx (200, with the headers
            // `add_header` adds to a 200, on a connection kept alive) and switched
            // protocols through pinlb (then the tunnel ended with the server's close).
            probe.is_upgrade()
                && !nginx_passed
                && (status(nginx), status(pinlb)) == (200, 101)
                && (diff.field == "status"
                    || diff.field == "client connection"
                    || diff.field == "upstream header upgrade"
                    || diff.field.starts_with("response header "))
        },
    },
    Documented {
        readme: "Requests to servers are HTTP/1.1; nginx sends HTTP/1.0 unless \
                 `proxy_http_version 1.1`",
        applies: |_, _, _, diff| {
            diff.field == "upstream version" && diff.nginx == "HTTP/1.0" && diff.pinlb == "HTTP/1.1"
        },
    },
    Documented {
        readme: "`OPTIONS * HTTP/1.1` is proxied (to where `/` goes); nginx refuses it with 400",
        applies: |probe, nginx, _, _| {
            probe.method == "OPTIONS" && probe.target == "*" && status(nginx) == 400
        },
    },
    Documented {
        readme: "An absolute request target whose host differs from `Host` byte for byte is \
                 refused with `400`",
        applies: |probe, _, pinlb, _| {
            let authority = probe
                .target
                .strip_prefix("http://")
                .map(|rest| rest.split('/').next().unwrap_or(rest));
            let host = probe.headers.iter().find(|(n, _)| n == "Host");
            matches!((authority, host), (Some(a), Some((_, h))) if a != h) && status(pinlb) == 400
        },
    },
];

/// The status answered, 0 for none.
fn status(o: &Observed) -> u16 {
    o.answer.as_ref().map_or(0, |a| a.status)
}

/// One field in which the two proxies' outcomes for one request differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// The request's number in the corpus.
    pub probe: usize,
    /// `status`, `server`, `upstream target`, `upstream header x-real-ip`, ...
    pub field: String,
    pub nginx: String,
    pub pinlb: String,
}

/// One request's outcome through one proxy, and the ports that proxy listened on.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub observed: &'a Observed,
    pub ports: &'a [u16],
}

/// The differences of one request, each with the documented difference it is, if any.
pub fn compare(
    id: usize,
    probe: &Probe,
    nginx: Run,
    pinlb: Run,
    backends: &[String],
    watched: &[String],
) -> Vec<(Diff, Option<&'static Documented>)> {
    let (n, p) = (
        facts(nginx, backends, watched),
        facts(pinlb, backends, watched),
    );
    let (nginx, pinlb) = (nginx.observed, pinlb.observed);
    let both_proxied = !nginx.received.is_empty() && !pinlb.received.is_empty();
    let mut fields: Vec<&String> = n.keys().chain(p.keys()).collect();
    fields.sort();
    fields.dedup();
    let absent = "(absent)".to_string();
    let mut out = Vec::new();
    for field in fields {
        // What the server received is compared when both sent the request to one.
        if field.starts_with("upstream ") && !both_proxied {
            continue;
        }
        let (a, b) = (
            n.get(field).unwrap_or(&absent),
            p.get(field).unwrap_or(&absent),
        );
        if a != b {
            let diff = Diff {
                probe: id,
                field: field.clone(),
                nginx: a.clone(),
                pinlb: b.clone(),
            };
            let documented = DOCUMENTED
                .iter()
                .find(|d| (d.applies)(probe, nginx, pinlb, &diff));
            out.push((diff, documented));
        }
    }
    out
}

/// The compared fields of one outcome. Headers are compared by name: the order of
/// different names carries no meaning in HTTP; several of one name keep their order.
/// The proxy's own listen port (in an absolute `Location`, say) reads `PORT`: the two
/// proxies listen on different ports.
fn facts(run: Run, backends: &[String], watched: &[String]) -> BTreeMap<String, String> {
    let o = run.observed;
    let mut f = BTreeMap::new();
    let mut add = |field: String, mut value: String| {
        for port in run.ports {
            value = value.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:PORT");
            value = value.replace(&format!(":{port}/"), ":PORT/");
            if value.ends_with(&format!(":{port}")) {
                value.truncate(value.len() - port.to_string().len());
                value.push_str("PORT");
            }
        }
        f.entry(field)
            .and_modify(|v: &mut String| {
                v.push_str(" | ");
                v.push_str(&value);
            })
            .or_insert(value);
    };
    match &o.answer {
        Ok(a) => {
            add("status".into(), a.status.to_string());
            let closed = if a.closed { "closed" } else { "kept open" };
            add("client connection".into(), closed.into());
            for (name, value) in &a.headers {
                let lower = name.to_ascii_lowercase();
                if watched.contains(&lower) {
                    add(
                        format!("response header {lower}"),
                        format!("{name}: {value}"),
                    );
                }
            }
        }
        Err(e) => add("status".into(), format!("none: {e}")),
    }
    let servers: Vec<&str> = o
        .received
        .iter()
        .map(|r| backends.get(r.backend).map_or("?", String::as_str))
        .collect();
    add(
        "server".into(),
        if servers.is_empty() {
            "none".into()
        } else {
            servers.join(", ")
        },
    );
    if let Some(r) = o.received.first() {
        add("upstream method".into(), r.method.clone());
        add("upstream target".into(), r.target.clone());
        add("upstream version".into(), r.version.clone());
        for (name, value) in &r.headers {
            add(
                format!("upstream header {}", name.to_ascii_lowercase()),
                format!("{name}: {value}"),
            );
        }
    }
    f
}

/// The totals of a comparison.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub requests: usize,
    /// The same in every field.
    pub same: usize,
    /// Different only in documented ways.
    pub documented: usize,
    /// With at least one unexpected difference.
    pub unexpected: usize,
}

/// Documented differences of one kind: (field, nginx, pinlb), the first request, how
/// many requests, the README's words.
type Group = ((String, String, String), usize, usize, &'static str);

/// Prints one line per difference (documented ones of one kind on one line unless
/// `verbose`), then the totals; returns them.
pub fn print(
    out: &mut String,
    probes: &[Probe],
    diffs: &[Vec<(Diff, Option<&'static Documented>)>],
    verbose: bool,
) -> Totals {
    let mut totals = Totals {
        requests: diffs.len(),
        ..Totals::default()
    };
    let mut grouped: Vec<Group> = Vec::new();
    for request in diffs {
        if request.is_empty() {
            totals.same += 1;
        } else if request.iter().all(|(_, d)| d.is_some()) {
            totals.documented += 1;
        } else {
            totals.unexpected += 1;
        }
        for (diff, documented) in request {
            let what = &probes[diff.probe];
            match documented {
                None => {
                    let _ = writeln!(
                        out,
                        "UNEXPECTED  #{} {}  {}: nginx {} | pinlb {}",
                        diff.probe,
                        what.describe(),
                        diff.field,
                        diff.nginx,
                        diff.pinlb
                    );
                }
                Some(d) if verbose => {
                    let _ = writeln!(
                        out,
                        "documented  #{} {}  {}: nginx {} | pinlb {}  (README: {})",
                        diff.probe,
                        what.describe(),
                        diff.field,
                        diff.nginx,
                        diff.pinlb,
                        d.readme
                    );
                }
                Some(d) => {
                    let key = (diff.field.clone(), diff.nginx.clone(), diff.pinlb.clone());
                    match grouped.iter_mut().find(|g| g.0 == key) {
                        Some(g) => g.2 += 1,
                        None => grouped.push((key, diff.probe, 1, d.readme)),
                    }
                }
            }
        }
    }
    for ((field, nginx, pinlb), first, count, readme) in &grouped {
        let _ = writeln!(
            out,
            "documented  {field}: nginx {nginx} | pinlb {pinlb}  ({count} requests, first #{first} {}; README: {readme})",
            probes[*first].describe()
        );
    }
    let pct = |n: usize| 100.0 * n as f64 / totals.requests.max(1) as f64;
    let _ = writeln!(
        out,
        "{} requests: {} the same in every field, {} different only as documented, {} with unexpected differences",
        totals.requests, totals.same, totals.documented, totals.unexpected
    );
    let _ = writeln!(
        out,
        "agreement: {:.1}% apart from documented differences ({:.1}% in every field)",
        pct(totals.same + totals.documented),
        pct(totals.same)
    );
    totals
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
