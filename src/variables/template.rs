//! A text with variables, parsed once and expanded per request.

use super::{RequestInfo, Token, Var, tokenize};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A header value with variables, such as `$scheme://$host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `$name` and `${name}` references; `$` must start a known variable or one
    /// of the `maps` (variable names without `$`).
    pub fn parse(text: &str, maps: &[String]) -> Result<Template, String> {
        let parts = tokenize(text)?
            .into_iter()
            .map(|token| match token {
                Token::Literal(s) => Ok(Part::Literal(s.to_string())),
                Token::Var(name) => Var::parse(name, maps)
                    .map(Part::Var)
                    .ok_or_else(|| format!("unknown \"{name}\" variable")),
            })
            .collect::<Result<_, String>>()?;
        Ok(Template { parts })
    }

    /// Appends the value for `req` to `out`. A variable with no value expands to nothing.
    pub fn expand(&self, req: &RequestInfo<'_>, out: &mut Vec<u8>) {
        self.expand_at(req, out, 0);
    }

    pub(super) fn expand_at(&self, req: &RequestInfo<'_>, out: &mut Vec<u8>, depth: usize) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Var(Var::Map(i)) => req.expand_map(*i, out, depth),
                Part::Var(v) => req.expand_var(v, out),
            }
        }
    }

    /// The text when the template has no variables.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// The variable when the template is one variable and nothing else (`$remote_addr`),
    /// to be written with [`RequestInfo::expand_var`] directly.
    pub fn as_var(&self) -> Option<&Var> {
        match self.parts.as_slice() {
            [Part::Var(v)] if !matches!(v, Var::Map(_)) => Some(v),
            _ => None,
        }
    }

    /// The value when it is one of a few fixed strings whatever the request (`$scheme`),
    /// so that no copy has to be made of it.
    pub fn as_static(&self, req: &RequestInfo<'_>) -> Option<&'static str> {
        match self.parts.as_slice() {
            [Part::Var(Var::Scheme)] => Some(if req.tls.is_some() { "https" } else { "http" }),
            _ => None,
        }
    }

    /// Indexes of the maps this template refers to.
    pub fn maps_used(&self) -> impl Iterator<Item = usize> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(Var::Map(i)) => Some(*i),
            _ => None,
        })
    }
}
