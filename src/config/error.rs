//! Configuration errors that point at their source: a JSON path or a file line.

use std::fmt;
use std::path::PathBuf;

/// Where an element of the model was written, so that validation errors can point there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origin {
    /// Built by pinlb itself, not read from a file.
    #[default]
    Builtin,
    /// A JSON path such as `upstreams.web.servers[1]`.
    Json(String),
    /// A line of an nginx-syntax file.
    Nginx { file: PathBuf, line: u32 },
}

impl Origin {
    /// The origin of `field` inside this element (`upstreams.web` + `servers`).
    pub fn field(&self, field: &str) -> Origin {
        match self {
            Origin::Json(path) if path.is_empty() => Origin::Json(field.to_string()),
            Origin::Json(path) if field.starts_with('[') => Origin::Json(format!("{path}{field}")),
            Origin::Json(path) => Origin::Json(format!("{path}.{field}")),
            other => other.clone(),
        }
    }
}

/// A configuration that cannot be used, with a message that says where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The file is not well-formed (the message carries line and column).
    #[error("{msg} in {}", file.display())]
    Syntax { file: PathBuf, msg: String },
    /// nginx syntax, with nginx's wording: `unexpected "}" in FILE:LINE:COL`.
    #[error("{0}")]
    NginxSyntax(super::nginx::parser::SyntaxError),
    /// A well-formed file with a value that cannot be used.
    #[error("{}", Located { file, origin, msg })]
    Invalid {
        file: PathBuf,
        origin: Origin,
        msg: String,
    },
}

impl ConfigError {
    pub fn invalid(file: &std::path::Path, origin: &Origin, msg: impl Into<String>) -> Self {
        ConfigError::Invalid {
            file: file.to_path_buf(),
            origin: origin.clone(),
            msg: msg.into(),
        }
    }
}

/// nginx's shape for JSON paths and file lines alike: `<where>: <what> in <file>` or
/// `<what> in <file>:<line>`.
struct Located<'a> {
    file: &'a PathBuf,
    origin: &'a Origin,
    msg: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Located { file, origin, msg } = self;
        match origin {
            Origin::Builtin => write!(f, "{msg} in {}", file.display()),
            Origin::Json(path) => write!(f, "{path}: {msg} in {}", file.display()),
            Origin::Nginx { file, line } => write!(f, "{msg} in {}:{line}", file.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_path_then_the_file() {
        let origin = Origin::Json("upstreams.web".into())
            .field("servers")
            .field("[1]");
        let err = ConfigError::invalid(
            "conf/a.json".as_ref(),
            &origin.field("weight"),
            "must be at least 1",
        );
        assert_eq!(
            err.to_string(),
            "upstreams.web.servers[1].weight: must be at least 1 in conf/a.json"
        );
    }

    #[test]
    fn nginx_errors_name_file_and_line() {
        let origin = Origin::Nginx {
            file: "nginx.conf".into(),
            line: 7,
        };
        let err = ConfigError::invalid("other".as_ref(), &origin.field("weight"), "invalid weight");
        assert_eq!(err.to_string(), "invalid weight in nginx.conf:7");
    }
}
