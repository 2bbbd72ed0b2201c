//! The user's nginx configuration copied into a scratch folder with its addresses pointed
//! at loopback: upstream servers and `proxy_pass` hosts at echo backends, `listen`s at
//! free ports on 127.0.0.1, process paths (pid, logs) into the scratch folder, `user`,
//! `daemon` and `worker_processes` replaced by lines appended to the main file. Everything
//! else is kept byte for byte, so that nginx and pinlb read the same configuration.
//!
//! Names such as `app1:80` resolve only inside the user's compose network: the mapping
//! replaces the name, it does not resolve it.

use crate::config::nginx::lexer::{Pos, Token, TokenKind, tokenize};
use crate::config::nginx::parser::{Arg, Directive, Parsed};
use crate::config::nginx::values;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a configuration points at, each address once, in order of appearance.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Addresses {
    /// Upstream `server` addresses and `proxy_pass` hosts as `host:port` in lower case,
    /// nginx's port 80 filled in: `app1:80`, `127.0.0.1:9001`.
    pub backends: Vec<String>,
    /// `listen` addresses as pinlb reads them; a `server` without `listen` has `*:80`.
    pub listens: Vec<SocketAddr>,
    /// Whether the main context has an `events` block (nginx refuses to start without).
    pub events: bool,
}

/// Where one copy of the configuration points.
pub struct Targets<'a> {
    /// The echo backend standing in for each of [`Addresses::backends`].
    pub backends: &'a [SocketAddr],
    /// The port on 127.0.0.1 for each of [`Addresses::listens`].
    pub listen_ports: &'a [u16],
    /// Where pid and log files go.
    pub scratch: &'a Path,
    /// Main-context directives appended to the main file (`daemon off;` ...).
    pub main_extra: &'a str,
}

/// The addresses `parsed` uses.
pub fn scan(parsed: &Parsed) -> Addresses {
    let mut found = Addresses::default();
    let upstreams = upstream_names(&parsed.directives);
    walk(&parsed.directives, Ctx::Main, &mut |d, ctx| {
        found.events |= ctx == Ctx::Main && d.name == "events";
        for Use { what, .. } in uses(d, ctx, &upstreams) {
            match what {
                Mapped::Backend { key, .. } if !found.backends.contains(&key) => {
                    found.backends.push(key)
                }
                Mapped::Listen(addr) if !found.listens.contains(&addr) => found.listens.push(addr),
                _ => {}
            }
        }
    });
    found
}

/// Writes the rewritten copy of every file of `parsed` under `root`, each at its own
/// absolute path below `root` (so relative `include`s still find their files); returns
/// the copy of the main file.
pub fn write_copy(
    parsed: &Parsed,
    found: &Addresses,
    targets: &Targets,
    root: &Path,
) -> Result<PathBuf, String> {
    let edits = plan(parsed, found, targets, root);
    let mut main_copy = None;
    let mut files = parsed.files.clone();
    files.dedup();
    for (i, file) in files.iter().enumerate() {
        let bytes = crate::config::file::read(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        let mut out = apply(file, &text, edits.get(file).map_or(&[][..], Vec::as_slice))?;
        if i == 0 {
            out.push('\n');
            out.push_str(targets.main_extra);
        }
        let copy = mirror(root, file);
        if let Some(dir) = copy.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&copy, out).map_err(|e| format!("cannot write {}: {e}", copy.display()))?;
        main_copy.get_or_insert(copy);
    }
    main_copy.ok_or_else(|| "no configuration file was read".to_string())
}

/// Where the copy of `file` (an absolute path) goes under `root`.
pub fn mirror(root: &Path, file: &Path) -> PathBuf {
    root.join(file.strip_prefix("/").unwrap_or(file))
}

/// One change to one file, at a token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Edit {
    /// Replace the token at (line, col) with this text.
    Replace(u32, u32, String),
    /// Remove the directive whose name is at (line, col), up to its `;`.
    Delete(u32, u32),
    /// Insert text after the `{` of the block directive whose name is at (line, col).
    AfterBrace(u32, u32, String),
}

/// Every edit, by file.
fn plan(
    parsed: &Parsed,
    found: &Addresses,
    targets: &Targets,
    root: &Path,
) -> BTreeMap<PathBuf, Vec<Edit>> {
    let mut edits: BTreeMap<PathBuf, Vec<Edit>> = BTreeMap::new();
    let mut add =
        |pos: &Pos, edit: Edit| edits.entry(pos.file.to_path_buf()).or_default().push(edit);
    let upstreams = upstream_names(&parsed.directives);
    walk(&parsed.directives, Ctx::Main, &mut |d, ctx| {
        for Use { at, what } in uses(d, ctx, &upstreams) {
            let text = match what {
                Mapped::Backend { key, render } => {
                    let Some(i) = found.backends.iter().position(|b| *b == key) else {
                        continue;
                    };
                    render(targets.backends[i])
                }
                Mapped::Listen(addr) => {
                    let Some(i) = found.listens.iter().position(|l| *l == addr) else {
                        continue;
                    };
                    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, targets.listen_ports[i]));
                    match at {
                        // A server without `listen`: one is added after its `{`.
                        None => {
                            add(
                                &d.pos,
                                Edit::AfterBrace(
                                    d.pos.line,
                                    d.pos.col,
                                    format!(" listen {listen};"),
                                ),
                            );
                            continue;
                        }
                        Some(_) => listen.to_string(),
                    }
                }
                Mapped::Log(name) => targets.scratch.join(name).display().to_string(),
                Mapped::Removed => {
                    add(&d.pos, Edit::Delete(d.pos.line, d.pos.col));
                    continue;
                }
            };
            if let Some(arg) = at {
                add(
                    &arg.pos,
                    Edit::Replace(arg.pos.line, arg.pos.col, word(&text)),
                );
            }
        }
    });
    // Absolute includes point into the copy; relative ones already do, since every file
    // keeps its place relative to the main file.
    for arg in &parsed.includes {
        if Path::new(&arg.value).is_absolute() {
            let copy = mirror(root, Path::new(&arg.value)).display().to_string();
            add(
                &arg.pos,
                Edit::Replace(arg.pos.line, arg.pos.col, word(&copy)),
            );
        }
    }
    edits
}

/// The contexts that matter for the rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Main,
    Http,
    Upstream,
    Server,
    /// `location`, and `if` or `limit_except` inside one.
    Location,
    /// Anything else (`events`, `map`, `types`, `stream`, ...): nothing to rewrite.
    Other,
}

/// Calls `f` on every directive with the context it is in.
fn walk(dirs: &[Directive], ctx: Ctx, f: &mut impl FnMut(&Directive, Ctx)) {
    for d in dirs {
        f(d, ctx);
        let inner = match (ctx, d.name.as_str()) {
            (Ctx::Main, "http") => Ctx::Http,
            (Ctx::Http, "upstream") => Ctx::Upstream,
            (Ctx::Http, "server") => Ctx::Server,
            (Ctx::Server | Ctx::Location, "location" | "if" | "limit_except") => Ctx::Location,
            _ => Ctx::Other,
        };
        if let Some(block) = &d.block {
            walk(block, inner, f);
        }
    }
}

/// The names of the `upstream` blocks, in lower case (nginx compares them so).
fn upstream_names(dirs: &[Directive]) -> Vec<String> {
    let mut names = Vec::new();
    walk(dirs, Ctx::Main, &mut |d, ctx| {
        if ctx == Ctx::Http && d.name == "upstream" {
            if let Some(name) = d.args.first() {
                names.push(name.value.to_ascii_lowercase());
            }
        }
    });
    names
}

/// One argument (or, for `at: None`, the directive itself) that the rewrite changes.
struct Use<'a> {
    at: Option<&'a Arg>,
    what: Mapped,
}

enum Mapped {
    /// An address that an echo backend stands in for; `render` writes the argument.
    Backend {
        key: String,
        render: Box<dyn Fn(SocketAddr) -> String>,
    },
    Listen(SocketAddr),
    /// A log file path, moved into the scratch folder under this name.
    Log(&'static str),
    /// A process directive the appended lines replace.
    Removed,
}

fn uses<'a>(d: &'a Directive, ctx: Ctx, upstreams: &[String]) -> Vec<Use<'a>> {
    let first = d.args.first();
    let one = |what| vec![Use { at: first, what }];
    match (ctx, d.name.as_str(), first) {
        (Ctx::Main, "user" | "daemon" | "pid" | "worker_processes", _) => {
            vec![Use {
                at: None,
                what: Mapped::Removed,
            }]
        }
        (_, "error_log", Some(a)) if a.value != "stderr" => one(Mapped::Log("error.log")),
        (_, "access_log", Some(a)) if a.value != "off" => one(Mapped::Log("access.log")),
        (Ctx::Upstream, "server", Some(a)) => match values::server_addr(&a.value) {
            Ok(key) => one(Mapped::Backend {
                key: key.to_ascii_lowercase(),
                render: Box::new(|addr| addr.to_string()),
            }),
            Err(_) => Vec::new(),
        },
        (Ctx::Location, "proxy_pass", Some(a)) => match values::ProxyUrl::parse(&a.value) {
            Ok(url)
                if url.port.is_some() || !upstreams.contains(&url.host.to_ascii_lowercase()) =>
            {
                let uri = url.uri.clone().unwrap_or_default();
                one(Mapped::Backend {
                    key: url.host_port().to_ascii_lowercase(),
                    render: Box::new(move |addr| format!("http://{addr}{uri}")),
                })
            }
            _ => Vec::new(),
        },
        (Ctx::Server, "listen", Some(a)) => match values::listen_addr(&a.value) {
            Ok(addr) => one(Mapped::Listen(addr)),
            Err(_) => Vec::new(),
        },
        (Ctx::Http, "server", _) => {
            let block = d.block.as_deref().unwrap_or_default();
            if block.iter().any(|e| e.name == "listen") {
                return Vec::new();
            }
            // nginx's default: `*:80` (as root), which pinlb assumes too.
            let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 80));
            vec![Use {
                at: None,
                what: Mapped::Listen(addr),
            }]
        }
        _ => Vec::new(),
    }
}

/// `value` as one nginx word, quoted when it has to be.
fn word(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '\\' | '#'));
    if plain {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// `text` (the contents of `file`) with `edits` applied.
fn apply(file: &Path, text: &str, edits: &[Edit]) -> Result<String, String> {
    if edits.is_empty() {
        return Ok(text.to_string());
    }
    let tokens = tokenize(&Arc::new(file.to_path_buf()), text)
        .map_err(|e| e.to_string())?
        .list;
    let index: HashMap<(u32, u32), usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| ((t.pos.line, t.pos.col), i))
        .collect();
    let lines = LineStarts::new(text);
    let find = |line: u32, col: u32| {
        index
            .get(&(line, col))
            .copied()
            .ok_or_else(|| format!("{}:{line}:{col}: no token to rewrite there", file.display()))
    };
    let next = |from: usize, kind: TokenKind| tokens[from..].iter().find(|t| t.kind == kind);
    // (start, end, replacement), applied from the end of the file backwards.
    let mut splices: Vec<(usize, usize, String)> = Vec::new();
    for edit in edits {
        match edit {
            Edit::Replace(line, col, text) => {
                let t = &tokens[find(*line, *col)?];
                splices.push((lines.offset(&t.pos), lines.offset(&t.end), text.clone()));
            }
            Edit::Delete(line, col) => {
                let i = find(*line, *col)?;
                let end = next(i, TokenKind::Semicolon).ok_or("directive without \";\"")?;
                let (start, end) = (lines.offset(&tokens[i].pos), lines.offset(&end.end));
                // The same line breaks, so that every later line keeps its number.
                let breaks = "\n".repeat(text[start..end].matches('\n').count());
                splices.push((start, end, breaks));
            }
            Edit::AfterBrace(line, col, text) => {
                let i = find(*line, *col)?;
                let brace: &Token = next(i, TokenKind::OpenBrace).ok_or("block without \"{\"")?;
                let at = lines.offset(&brace.end);
                splices.push((at, at, text.clone()));
            }
        }
    }
    splices.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut out = text.to_string();
    for (start, end, replacement) in splices {
        out.replace_range(start..end, &replacement);
    }
    Ok(out)
}

/// Byte offsets of 1-based line and char column positions.
struct LineStarts<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineStarts<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineStarts { text, starts }
    }

    fn offset(&self, pos: &Pos) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize - 1) else {
            return self.text.len();
        };
        self.text[start..]
            .char_indices()
            .nth(pos.col as usize - 1)
            .map_or(self.text.len(), |(i, _)| start + i)
    }
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
