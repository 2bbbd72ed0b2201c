use super::*;
use crate::compare::echo::Received;
use crate::compare::replay::Answer;

fn proxied(status: u16, version: &str, headers: &[(&str, &str)]) -> Observed {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    Observed {
        answer: Ok(Answer {
            status,
            headers: Vec::new(),
            closed: true,
        }),
        received: vec![Received {
            backend: 0,
            id: Some(0),
            method: "GET".into(),
            target: "/".into(),
            version: version.into(),
            headers,
        }],
    }
}

fn answered(status: u16, headers: &[(&str, &str)]) -> Observed {
    Observed {
        answer: Ok(Answer {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            closed: true,
        }),
        received: Vec::new(),
    }
}

fn diffs(nginx: &Observed, pinlb: &Observed) -> Vec<(Diff, Option<&'static Documented>)> {
    let probe = Probe::get(0, "a.test", "/");
    let run = |observed, ports| Run { observed, ports };
    let backends = ["app1:80".to_string()];
    compare(
        0,
        &probe,
        run(nginx, &[1111]),
        run(pinlb, &[2222]),
        &backends,
        &["location".into()],
    )
}

#[test]
fn the_same_outcome_is_no_difference() {
    let one = proxied(
        200,
        "HTTP/1.1",
        &[("Host", "a.test"), ("X-Real-IP", "127.0.0.1")],
    );
    assert!(diffs(&one, &one.clone()).is_empty());
}

#[test]
fn documented_differences_are_named_and_others_are_unexpected() {
    let nginx = proxied(
        200,
        "HTTP/1.0",
        &[("Host", "a.test"), ("Connection", "close"), ("X-A", "1")],
    );
    let pinlb = proxied(200, "HTTP/1.1", &[("Host", "a.test"), ("x-a", "1")]);
    let found = diffs(&nginx, &pinlb);
    let summary: Vec<(&str, bool)> = found
        .iter()
        .map(|(d, doc)| (d.field.as_str(), doc.is_some()))
        .collect();
    assert_eq!(
        summary,
        [
            ("upstream header connection", true),
            ("upstream header x-a", false),
            ("upstream version", true),
        ]
    );
    assert_eq!(found[1].0.nginx, "X-A: 1");
    assert_eq!(found[1].0.pinlb, "x-a: 1");
}

#[test]
fn what_a_server_received_is_compared_only_when_both_proxied() {
    let nginx = answered(301, &[("Location", "http://a.test:1111/x/")]);
    let pinlb = proxied(200, "HTTP/1.1", &[("Host", "a.test")]);
    let fields: Vec<String> = diffs(&nginx, &pinlb)
        .into_iter()
        .map(|(d, _)| d.field)
        .collect();
    assert_eq!(fields, ["response header location", "server", "status"]);
    // Each proxy's own port reads PORT, so that absolute redirects compare.
    let pinlb = answered(301, &[("Location", "http://a.test:2222/x/")]);
    assert!(diffs(&nginx, &pinlb).is_empty());
}

#[test]
fn totals_count_requests_by_their_worst_difference() {
    let probes = vec![Probe::get(0, "a.test", "/"); 3];
    let same = proxied(200, "HTTP/1.1", &[]);
    let old = proxied(200, "HTTP/1.0", &[]);
    let lists = vec![
        diffs(&same, &same),
        diffs(&old, &same),
        diffs(&answered(404, &[]), &same),
    ];
    let mut out = String::new();
    let totals = print(&mut out, &probes, &lists, false);
    assert_eq!(
        totals,
        Totals {
            requests: 3,
            same: 1,
            documented: 1,
            unexpected: 1
        }
    );
    assert!(
        out.contains(
            "UNEXPECTED  #0 GET / HTTP/1.1 [Host: a.test]  server: nginx none | pinlb app1:80\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("agreement: 66.7% apart from documented differences (33.3% in every field)"),
        "{out}"
    );
}

#[test]
fn refused_request_lines_are_documented_only_with_the_refusal_described() {
    let refused = answered(400, &[]);
    let served = proxied(200, "HTTP/1.1", &[("Host", "a.test")]);
    let documented = |probe: &Probe, nginx: &Observed, pinlb: &Observed| {
        let run = |observed, ports| Run { observed, ports };
        let backends = ["app1:80".to_string()];
        let found = compare(0, probe, run(nginx, &[1]), run(pinlb, &[2]), &backends, &[]);
        assert!(!found.is_empty());
        found.iter().all(|(_, d)| d.is_some())
    };
    let star = Probe {
        method: "OPTIONS".into(),
        ..Probe::get(0, "a.test", "*")
    };
    assert!(documented(&star, &refused, &served));
    assert!(!documented(&star, &served, &refused));
    // pinlb refuses a Host that is not the target's host; nginx uses the target's.
    let mismatch = Probe::get(0, "b.test", "http://a.test/x");
    assert!(documented(&mismatch, &served, &refused));
    assert!(!documented(&mismatch, &refused, &served));
    let same = Probe::get(0, "a.test", "http://a.test/x");
    assert!(!documented(&same, &served, &refused));
}

#[test]
fn every_documented_difference_quotes_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let readme = words(&readme);
    for d in DOCUMENTED {
        assert!(
            readme.contains(&words(d.readme)),
            "not in README.md: {}",
            d.readme
        );
    }
}
