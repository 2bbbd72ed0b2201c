//! nginx's choice of `location`: an exact match, else the longest prefix unless a regex
//! matches first (`^~` prefixes skip the regexes); and nginx's automatic redirect of a
//! path to the proxying location named by that path and a `/`. Paths are matched as
//! bytes, after normalisation ([`super::uri`]): a decoded path need not be UTF-8.

use crate::config::PathMatch;
use regex::bytes::{Regex, RegexBuilder};

/// The locations of one virtual server, prepared for matching.
#[derive(Debug, Default)]
pub struct Locations {
    exact: Vec<(String, usize)>,
    /// Longest first; the flag marks `^~`.
    prefixes: Vec<(String, bool, usize)>,
    /// In config order: the first match wins.
    regexes: Vec<(Regex, usize)>,
    /// Exact and prefix locations that redirect their name without its final `/`.
    auto_redirects: Vec<(String, usize)>,
}

impl Locations {
    /// `paths[i]` is the match of route `i`. An invalid regex is an error naming its route.
    pub fn new(paths: &[&PathMatch]) -> Result<Locations, (usize, String)> {
        let mut l = Locations::default();
        for (i, path) in paths.iter().enumerate() {
            match path {
                PathMatch::Exact(p) => l.exact.push((p.clone(), i)),
                PathMatch::Prefix(p) => l.prefixes.push((p.clone(), false, i)),
                PathMatch::PrefixNoRegex(p) => l.prefixes.push((p.clone(), true, i)),
                PathMatch::Regex {
                    pattern,
                    case_insensitive,
                } => {
                    let re = RegexBuilder::new(pattern)
                        .case_insensitive(*case_insensitive)
                        .build()
                        .map_err(|e| (i, format!("invalid regex \"{pattern}\": {e}")))?;
                    l.regexes.push((re, i));
                }
            }
        }
        l.prefixes
            .sort_by_key(|(p, _, _)| std::cmp::Reverse(p.len()));
        Ok(l)
    }

    /// Makes route `i`, the location `name` (exact or prefix), redirect `name` without
    /// its final `/` (nginx's `auto_redirect`, which `proxy_pass` sets).
    pub fn auto_redirect(&mut self, i: usize, name: &str) {
        if name.len() > 1 && name.ends_with('/') {
            self.auto_redirects.push((name.to_string(), i));
        }
    }

    /// The location whose automatic redirect answers the normalised `path`, and its name:
    /// one named `path/`, when no location is named `path` itself. nginx looks no further
    /// (not at the regexes).
    pub fn redirect(&self, path: &[u8]) -> Option<(usize, &str)> {
        if self.auto_redirects.is_empty() {
            return None;
        }
        let (name, i) = self
            .auto_redirects
            .iter()
            .find(|(name, _)| name.len() == path.len() + 1 && name.as_bytes().starts_with(path))?;
        let named = |p: &String| p.as_bytes() == path;
        let taken = self.exact.iter().any(|(p, _)| named(p))
            || self.prefixes.iter().any(|(p, _, _)| named(p));
        (!taken).then_some((*i, name.as_str()))
    }

    /// The route for the normalised `path`, by nginx's rules.
    pub fn find(&self, path: &[u8]) -> Option<usize> {
        if let Some((_, i)) = self.exact.iter().find(|(p, _)| p.as_bytes() == path) {
            return Some(*i);
        }
        let longest = self
            .prefixes
            .iter()
            .find(|(p, _, _)| path.starts_with(p.as_bytes()));
        if let Some((_, true, i)) = longest {
            return Some(*i);
        }
        self.regexes
            .iter()
            .find(|(re, _)| re.is_match(path))
            .map(|(_, i)| *i)
            .or(longest.map(|(_, _, i)| *i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locations(paths: &[PathMatch]) -> Locations {
        Locations::new(&paths.iter().collect::<Vec<_>>()).unwrap()
    }

    fn prefix(p: &str) -> PathMatch {
        PathMatch::Prefix(p.into())
    }

    fn regex(p: &str, ci: bool) -> PathMatch {
        PathMatch::Regex {
            pattern: p.into(),
            case_insensitive: ci,
        }
    }

    /// The example of nginx's `location` documentation.
    #[test]
    fn nginx_documentation_example() {
        let l = locations(&[
            PathMatch::Exact("/".into()),                // A
            prefix("/"),                                 // B
            prefix("/documents/"),                       // C
            PathMatch::PrefixNoRegex("/images/".into()), // D
            regex(r"\.(gif|jpg|jpeg)$", true),           // E
        ]);
        assert_eq!(l.find(b"/"), Some(0));
        assert_eq!(l.find(b"/index.html"), Some(1));
        assert_eq!(l.find(b"/documents/document.html"), Some(2));
        assert_eq!(l.find(b"/images/1.gif"), Some(3));
        assert_eq!(l.find(b"/documents/1.jpg"), Some(4));
        assert_eq!(l.find(b"/documents/1.JPG"), Some(4));
    }

    /// What nginx 1.22 answers (checked with nginx itself): `/api` is redirected to
    /// `/api/` even though the regex `^/ap` matches it; a location named `/both` is found
    /// instead of redirecting; `/plain/` does not proxy (no redirect).
    #[test]
    fn a_proxying_location_redirects_its_name_without_the_slash() {
        let mut l = locations(&[
            prefix("/"),
            prefix("/api/"),
            PathMatch::Exact("/ex/".into()),
            regex("^/ap", false),
            prefix("/both/"),
            prefix("/both"),
            prefix("/plain/"),
        ]);
        for (i, name) in [(0, "/"), (1, "/api/"), (2, "/ex/"), (4, "/both/")] {
            l.auto_redirect(i, name);
        }
        assert_eq!(l.redirect(b"/api"), Some((1, "/api/")));
        assert_eq!(l.redirect(b"/ex"), Some((2, "/ex/")));
        assert_eq!(l.redirect(b"/both"), None);
        assert_eq!(l.find(b"/both"), Some(5));
        assert_eq!(l.redirect(b"/plain"), None);
        assert_eq!(l.redirect(b"/api/"), None);
        assert_eq!(l.redirect(b"/apx"), None);
        assert_eq!(l.redirect(b""), None);
        assert_eq!(locations(&[prefix("/api/")]).redirect(b"/api"), None);
    }

    #[test]
    fn first_regex_in_order_wins() {
        let l = locations(&[regex("^/a", false), regex("^/ab", false)]);
        assert_eq!(l.find(b"/abc"), Some(0));
        assert_eq!(l.find(b"/x"), None);
    }

    #[test]
    fn case_sensitive_regex_needs_the_case() {
        let l = locations(&[prefix("/"), regex(r"\.php$", false)]);
        assert_eq!(l.find(b"/x.php"), Some(1));
        assert_eq!(l.find(b"/x.PHP"), Some(0));
    }
}
