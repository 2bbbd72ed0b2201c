//! Turns nginx config tokens into a tree of directives, expanding `include` in place.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::lexer::{Pos, SyntaxError};
use super::lexer::{Token, TokenKind, tokenize};

/// Deeper nesting than any real config; bounds recursion on hostile input.
const MAX_BLOCK_DEPTH: usize = 64;
/// Files open at once through nested includes, counting the main file.
const MAX_INCLUDE_DEPTH: usize = 32;
/// Files read in total: a file that includes another twice, at every level, would
/// otherwise read 2^32 files before hitting the depth limit.
const MAX_FILES_READ: usize = 10_000;

/// One directive: `name arg arg;` or `name arg { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<Arg>,
    /// `Some` for block directives (`http { ... }`), `None` for simple ones ending in `;`.
    pub block: Option<Vec<Directive>>,
    /// Where the directive's name was written.
    pub pos: Pos,
}

/// One argument of a directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The value with quotes removed and escapes resolved.
    pub value: String,
    /// Whether it was written in single or double quotes.
    pub quoted: bool,
    pub pos: Pos,
}

/// Reads `path` and every file it includes.
pub fn parse_file(path: &Path) -> Result<Vec<Directive>, SyntaxError> {
    parse_file_traced(path).map(|parsed| parsed.directives)
}

/// A parsed configuration and the files it was read from, for tools that copy it.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The directives, with every `include` expanded in place.
    pub directives: Vec<Directive>,
    /// Every file read, the main file first, in the order they were read.
    pub files: Vec<PathBuf>,
    /// The pattern argument of every `include` (expanded away in `directives`).
    pub includes: Vec<Arg>,
}

/// Reads `path` and every file it includes, and says which files those were.
pub fn parse_file_traced(path: &Path) -> Result<Parsed, SyntaxError> {
    let whole_file = Pos {
        file: Arc::new(path.to_path_buf()),
        line: 1,
        col: 1,
    };
    let mut includes = Includes::default();
    let directives = includes.read(path, &whole_file, 0)?;
    Ok(Parsed {
        directives,
        files: includes.files,
        includes: includes.patterns,
    })
}

/// Parses `text` as if it were the file `path` (includes resolve relative to `path`'s folder).
pub fn parse_str(path: &Path, text: &str) -> Result<Vec<Directive>, SyntaxError> {
    Includes::default().parse(path, text, 0)
}

/// The state shared by a file and everything it includes.
#[derive(Default)]
struct Includes {
    /// Canonical paths of the files being parsed, outermost first: catches cycles early.
    open: Vec<PathBuf>,
    files_read: usize,
    /// Bytes of every file read so far: the whole configuration is bounded too.
    bytes_read: u64,
    /// The main file's folder: nginx resolves every relative include against it (its
    /// configuration prefix), not against the including file's folder.
    root: Option<PathBuf>,
    /// Every file read, in order (see [`Parsed::files`]).
    files: Vec<PathBuf>,
    /// Every `include` argument (see [`Parsed::includes`]).
    patterns: Vec<Arg>,
}

impl Includes {
    fn read(&mut self, path: &Path, at: &Pos, depth: usize) -> Result<Vec<Directive>, SyntaxError> {
        let bytes = crate::config::file::read(path).map_err(|e| open_failed(path, &e, at))?;
        self.bytes_read += bytes.len() as u64;
        self.files.push(path.to_path_buf());
        if self.bytes_read > crate::config::file::MAX_CONFIG_BYTES {
            let too_large = crate::config::file::too_large();
            return Err(open_failed(path, &too_large, at));
        }
        self.parse(path, &String::from_utf8_lossy(&bytes), depth)
    }

    fn parse(
        &mut self,
        path: &Path,
        text: &str,
        depth: usize,
    ) -> Result<Vec<Directive>, SyntaxError> {
        let file = Arc::new(path.to_path_buf());
        let tokens = tokenize(&file, text)?;
        self.files_read += 1;
        self.open.push(canonical(path));
        let root = self
            .root
            .get_or_insert_with(|| path.parent().unwrap_or(Path::new("")).to_path_buf())
            .clone();
        let mut parser = Parser {
            tokens: &tokens.list,
            next: 0,
            eof: &tokens.eof,
            dir: &root,
            includes: self,
        };
        let result = parser.block(depth, false);
        self.open.pop();
        result
    }

    /// The directives of every file that `include PATTERN` names, in order.
    fn include(
        &mut self,
        dir: &Path,
        pattern: &str,
        at: &Pos,
        depth: usize,
    ) -> Result<Vec<Directive>, SyntaxError> {
        if self.open.len() >= MAX_INCLUDE_DEPTH {
            return Err(SyntaxError::new(at.clone(), "too deep include nesting"));
        }
        let mut out = Vec::new();
        for path in resolve(dir, pattern, at)? {
            let key = canonical(&path);
            if self.open.contains(&key) {
                let msg = format!(
                    "too deep include nesting: \"{}\" includes itself",
                    path.display()
                );
                return Err(SyntaxError::new(at.clone(), msg));
            }
            if self.files_read >= MAX_FILES_READ {
                return Err(SyntaxError::new(at.clone(), "too many included files"));
            }
            out.extend(self.read(&path, at, depth)?);
        }
        Ok(out)
    }
}

/// The files an include pattern names: one that must exist, or any glob matches, sorted.
fn resolve(dir: &Path, pattern: &str, at: &Pos) -> Result<Vec<PathBuf>, SyntaxError> {
    let absolute = Path::new(pattern).is_absolute();
    if !pattern.contains(['*', '?', '[']) {
        return Ok(vec![if absolute {
            PathBuf::from(pattern)
        } else {
            dir.join(pattern)
        }]);
    }
    // The folder is literal even if its name happens to contain glob characters.
    let full = if absolute || dir.as_os_str().is_empty() {
        pattern.to_string()
    } else {
        let dir = glob::Pattern::escape(&dir.to_string_lossy());
        Path::new(&dir).join(pattern).to_string_lossy().into_owned()
    };
    // POSIX glob, as nginx uses it: `*` matches neither `/` nor a leading dot.
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let failed = |msg: String| SyntaxError::new(at.clone(), msg);
    let matches = glob::glob_with(&full, options)
        .map_err(|e| failed(format!("glob() \"{full}\" failed ({e})")))?;
    let mut files = Vec::new();
    for entry in matches {
        let path = entry.map_err(|e| open_failed(e.path(), e.error(), at))?;
        if !path.is_dir() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// nginx's wording: `open() "/etc/nginx/x.conf" failed (No such file or directory)`.
fn open_failed(path: &Path, err: &io::Error, at: &Pos) -> SyntaxError {
    let text = err.to_string();
    // Rust appends " (os error 2)"; nginx shows only the system's text.
    let text = text.find(" (os error ").map_or(&*text, |i| &text[..i]);
    let msg = format!("open() \"{}\" failed ({text})", path.display());
    SyntaxError::new(at.clone(), msg)
}

struct Parser<'a> {
    tokens: &'a [Token],
    next: usize,
    eof: &'a Pos,
    /// The folder relative includes start from (the main file's).
    dir: &'a Path,
    includes: &'a mut Includes,
}

impl<'a> Parser<'a> {
    fn next_token(&mut self) -> Option<&'a Token> {
        let tok = self.tokens.get(self.next)?;
        self.next += 1;
        Some(tok)
    }

    /// Directives up to the end of file (top level) or the `}` that closes an `in_block`.
    fn block(&mut self, depth: usize, in_block: bool) -> Result<Vec<Directive>, SyntaxError> {
        let mut out = Vec::new();
        loop {
            let Some(tok) = self.next_token() else {
                if in_block {
                    let msg = "unexpected end of file, expecting \"}\"";
                    return Err(SyntaxError::new(self.eof.clone(), msg));
                }
                return Ok(out);
            };
            match &tok.kind {
                TokenKind::Word { value, .. } => self.statement(tok, value, depth, &mut out)?,
                TokenKind::CloseBrace if in_block => return Ok(out),
                other => return Err(unexpected(tok, other)),
            }
        }
    }

    /// The rest of the directive named by `name_tok`, appended to `out` (several
    /// directives for an `include`).
    fn statement(
        &mut self,
        name_tok: &'a Token,
        name: &str,
        depth: usize,
        out: &mut Vec<Directive>,
    ) -> Result<(), SyntaxError> {
        let mut words: Vec<&'a Token> = Vec::new();
        let block = loop {
            let Some(tok) = self.next_token() else {
                check_terminated(name_tok, name, &words)?;
                let msg = "unexpected end of file, expecting \";\" or \"}\"";
                return Err(SyntaxError::new(self.eof.clone(), msg));
            };
            match &tok.kind {
                TokenKind::Word { .. } => words.push(tok),
                TokenKind::Semicolon => {
                    check_terminated(name_tok, name, &words)?;
                    break None;
                }
                TokenKind::OpenBrace => {
                    if depth >= MAX_BLOCK_DEPTH {
                        return Err(SyntaxError::new(tok.pos.clone(), "too deep block nesting"));
                    }
                    break Some(self.block(depth + 1, true)?);
                }
                TokenKind::CloseBrace => {
                    check_terminated(name_tok, name, &words)?;
                    return Err(unexpected(tok, &tok.kind));
                }
            }
        };
        let args: Vec<Arg> = words.iter().filter_map(|t| to_arg(t)).collect();
        if name == "include" {
            let [pattern] = args.as_slice() else {
                let msg = "invalid number of arguments in \"include\" directive";
                return Err(SyntaxError::new(name_tok.pos.clone(), msg));
            };
            if block.is_some() {
                let msg = "directive \"include\" is not terminated by \";\"";
                return Err(SyntaxError::new(name_tok.pos.clone(), msg));
            }
            let at = &name_tok.pos;
            self.includes.patterns.push(pattern.clone());
            out.extend(self.includes.include(self.dir, &pattern.value, at, depth)?);
            return Ok(());
        }
        out.push(Directive {
            name: name.to_string(),
            args,
            block,
            pos: name_tok.pos.clone(),
        });
        Ok(())
    }
}

fn to_arg(tok: &Token) -> Option<Arg> {
    match &tok.kind {
        TokenKind::Word { value, quoted } => Some(Arg {
            value: value.clone(),
            quoted: *quoted,
            pos: tok.pos.clone(),
        }),
        _ => None,
    }
}

fn unexpected(tok: &Token, kind: &TokenKind) -> SyntaxError {
    let what = match kind {
        TokenKind::Semicolon => ";",
        TokenKind::OpenBrace => "{",
        TokenKind::CloseBrace => "}",
        TokenKind::Word { value, .. } => value,
    };
    SyntaxError::new(tok.pos.clone(), format!("unexpected \"{what}\""))
}

/// Catches the usual missing `;`: an argument that starts a new line and looks like a
/// directive name is taken to be the next directive. Continuation lines that start with
/// a quoted string (`log_format`) or a value such as `text/css` or `www.example.com`
/// (`gzip_types`, `server_name`) are legal and common, so they are not flagged.
fn check_terminated(name_tok: &Token, name: &str, args: &[&Token]) -> Result<(), SyntaxError> {
    let mut prev = name_tok;
    for &arg in args {
        let starts_line = arg.pos.line > prev.end.line;
        if starts_line
            && matches!(&arg.kind, TokenKind::Word { value, quoted: false } if looks_like_name(value))
        {
            let msg = format!("directive \"{name}\" is not terminated by \";\"");
            return Err(SyntaxError::new(prev.end.clone(), msg));
        }
        prev = arg;
    }
    Ok(())
}

/// nginx directive names are identifiers: `proxy_pass`, `server`, `worker_processes`.
fn looks_like_name(word: &str) -> bool {
    let mut chars = word.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directive without positions, for comparing trees.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Plain {
        name: String,
        args: Vec<(String, bool)>,
        block: Option<Vec<Plain>>,
    }

    fn plain(ds: &[Directive]) -> Vec<Plain> {
        ds.iter()
            .map(|d| Plain {
                name: d.name.clone(),
                args: d.args.iter().map(|a| (a.value.clone(), a.quoted)).collect(),
                block: d.block.as_deref().map(plain),
            })
            .collect()
    }

    fn node(name: &str, args: &[&str], block: Option<Vec<Plain>>) -> Plain {
        Plain {
            name: name.into(),
            args: args.iter().map(|a| (a.to_string(), false)).collect(),
            block,
        }
    }

    const FILE: &str = "/nonexistent-pinlb-test/nginx.conf";

    fn parse(text: &str) -> Vec<Directive> {
        parse_str(Path::new(FILE), text).expect("parses")
    }

    /// The error for `text` as (line, col, message).
    fn fail(text: &str) -> (u32, u32, String) {
        let e = parse_str(Path::new(FILE), text).expect_err("must fail");
        (e.pos.line, e.pos.col, e.msg)
    }

    #[test]
    fn simple_and_block_directives() {
        let got = plain(&parse(
            "user nginx;\nhttp { server { listen 80; } sendfile on; }",
        ));
        let want = vec![
            node("user", &["nginx"], None),
            node(
                "http",
                &[],
                Some(vec![
                    node("server", &[], Some(vec![node("listen", &["80"], None)])),
                    node("sendfile", &["on"], None),
                ]),
            ),
        ];
        assert_eq!(got, want);
        assert_eq!(
            plain(&parse("events {}")),
            [node("events", &[], Some(vec![]))]
        );
        assert!(parse("").is_empty());
        assert!(parse("# nothing\n\n").is_empty());
    }

    #[test]
    fn comments_are_skipped() {
        let got = plain(&parse("# top\na 1; # after\n# {\nb { # x }\n c; }\n"));
        let want = vec![
            node("a", &["1"], None),
            node("b", &[], Some(vec![node("c", &[], None)])),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn if_condition_args() {
        for text in [
            "if ($http_app = \"app1\") { proxy_pass http://app1; }",
            "if ($http_app = \"app1\"){ proxy_pass http://app1; }",
            "if ($http_app = \"app1\"){\n  proxy_pass http://app1;\n}",
        ] {
            let got = plain(&parse(text));
            let want = vec![Plain {
                name: "if".into(),
                args: vec![
                    ("($http_app".into(), false),
                    ("=".into(), false),
                    ("app1".into(), true),
                    (")".into(), false),
                ],
                block: Some(vec![node("proxy_pass", &["http://app1"], None)]),
            }];
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn quotes_and_escapes() {
        let d = parse("return 200 \"ok\\n\";\nadd_header X 'a \\'b\\' c';\nmap $a $b { '' x; }");
        assert_eq!(d[0].args[1].value, "ok\n");
        assert!(d[0].args[1].quoted && !d[0].args[0].quoted);
        assert_eq!(d[1].args[1].value, "a 'b' c");
        let map = d[2].block.as_ref().expect("block");
        assert_eq!(
            (map[0].name.as_str(), map[0].args[0].value.as_str()),
            ("", "x")
        );
    }

    #[test]
    fn multi_line_log_format() {
        let text = "log_format main '$remote_addr - $remote_user '\n    '\"$request\" $status'\n    \"$http_referer\";\naccess_log x main;";
        let d = parse(text);
        assert_eq!(d.len(), 2);
        let args: Vec<&str> = d[0].args.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(
            args,
            [
                "main",
                "$remote_addr - $remote_user ",
                "\"$request\" $status",
                "$http_referer"
            ]
        );
        assert_eq!(d[1].pos.line, 4);
    }

    #[test]
    fn variable_with_braces() {
        let d = parse("proxy_set_header Host ${host}x;\nset $a ${b}{ c; }");
        assert_eq!(d[0].args[1].value, "${host}x");
        assert_eq!(d[1].args[1].value, "${b}");
        assert!(d[1].block.is_some());
    }

    #[test]
    fn positions() {
        let d = parse("http {\n    upstream app {\n\tserver  a:1 'w=1';\n    }\n}\n");
        let at = |p: &Pos| (p.line, p.col);
        assert_eq!(at(&d[0].pos), (1, 1));
        let up = &d[0].block.as_ref().expect("http block")[0];
        assert_eq!(at(&up.pos), (2, 5));
        assert_eq!(at(&up.args[0].pos), (2, 14));
        let server = &up.block.as_ref().expect("upstream block")[0];
        assert_eq!(at(&server.pos), (3, 2));
        assert_eq!(at(&server.args[0].pos), (3, 10));
        assert_eq!(at(&server.args[1].pos), (3, 14));
        assert_eq!(server.pos.file.as_path(), Path::new(FILE));
    }

    #[test]
    fn structural_errors() {
        assert_eq!(fail("a;\n}"), (2, 1, "unexpected \"}\"".into()));
        assert_eq!(
            fail("a {\n b;\n"),
            (3, 1, "unexpected end of file, expecting \"}\"".into())
        );
        assert_eq!(
            fail("a {\n b;"),
            (2, 4, "unexpected end of file, expecting \"}\"".into())
        );
        let eof = "unexpected end of file, expecting \";\" or \"}\"";
        assert_eq!(fail("a;\nb c"), (2, 4, eof.into()));
        assert_eq!(fail("x { a b"), (1, 8, eof.into()));
        assert_eq!(fail("a;\n ;"), (2, 2, "unexpected \";\"".into()));
        assert_eq!(fail("{ a; }"), (1, 1, "unexpected \"{\"".into()));
        assert_eq!(fail("x { a b }"), (1, 9, "unexpected \"}\"".into()));
        assert_eq!(
            fail("a \"b"),
            (
                1,
                3,
                "unexpected end of file, expecting closing quote".into()
            )
        );
        assert_eq!(fail("a \"b\"c;"), (1, 6, "unexpected \"c\"".into()));
    }

    #[test]
    fn missing_semicolon() {
        let text =
            "upstream app {\n        server 127.0.0.1:9001\n        server 127.0.0.1:9002;\n}";
        let want = "directive \"server\" is not terminated by \";\"";
        assert_eq!(fail(text), (2, 30, want.into()));
        // Also when the statement is cut short by `}` or the end of file.
        assert_eq!(
            fail("a {\n b 1\n c 2 }"),
            (2, 5, "directive \"b\" is not terminated by \";\"".into())
        );
        assert_eq!(
            fail("b 1\nc 2"),
            (1, 4, "directive \"b\" is not terminated by \";\"".into())
        );
        // The position is the end of the line that lacks the `;`, even after a quoted arg.
        assert_eq!(
            fail("b 'x\ny'\nc;"),
            (2, 3, "directive \"b\" is not terminated by \";\"".into())
        );
    }

    #[test]
    fn legal_multi_line_arguments() {
        let d = parse("location\n  /x {\n}\nif ($a\n  = b) { }");
        assert_eq!(d[0].args[0].value, "/x");
        assert_eq!(d[1].args.len(), 3);
        let d = parse(
            "gzip_types text/plain\n    text/css application/json;\nserver_name a.test\n    www.a.test;",
        );
        assert_eq!((d[0].args.len(), d[1].args.len()), (3, 2));
        let d = parse("add_header X\n    \"v\" always;\nlog_format m\n  '$a'\n  '$b';");
        assert_eq!((d[0].args.len(), d[1].args.len()), (3, 3));
    }

    #[test]
    fn block_nesting_is_limited() {
        let deep = "a {".repeat(MAX_BLOCK_DEPTH) + &"}".repeat(MAX_BLOCK_DEPTH);
        assert!(parse_str(Path::new(FILE), &deep).is_ok());
        let deeper = "a {".repeat(MAX_BLOCK_DEPTH + 1) + &"}".repeat(MAX_BLOCK_DEPTH + 1);
        assert_eq!(fail(&deeper).2, "too deep block nesting");
        assert_eq!(fail(&"{".repeat(100_000)).2, "unexpected \"{\"");
        assert_eq!(fail(&"a{".repeat(100_000)).2, "too deep block nesting");
    }

    /// A folder under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let n = COUNT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("pinlb-nginx-{name}-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }

        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.0.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create dir");
            }
            std::fs::write(&path, text).expect("write file");
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn relative_include() {
        let tmp = TempDir::new("rel");
        tmp.write(
            "snippets/proxy.conf",
            "proxy_set_header Host $host;\nproxy_pass http://a;\n",
        );
        let main = tmp.write(
            "nginx.conf",
            "http {\n  a 1;\n  include snippets/proxy.conf;\n  b 2;\n}\n",
        );
        let d = parse_file(&main).expect("parses");
        let block = d[0].block.as_ref().expect("block");
        let names: Vec<&str> = block.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a", "proxy_set_header", "proxy_pass", "b"]);
        assert_eq!(*block[2].pos.file, tmp.0.join("snippets/proxy.conf"));
        assert_eq!(block[2].pos.line, 2);
        assert_eq!(*block[3].pos.file, main);
        // parse_str resolves against the folder of the path it is given.
        let d = parse_str(&main, "include snippets/proxy.conf;").expect("parses");
        assert_eq!(d.len(), 2);
        // Absolute paths are used as they are.
        let abs = format!("include {};", tmp.0.join("snippets/proxy.conf").display());
        assert_eq!(parse_str(Path::new(FILE), &abs).expect("parses").len(), 2);
    }

    #[test]
    fn nested_includes_resolve_against_the_main_files_folder() {
        let tmp = TempDir::new("nested");
        tmp.write("snippets/x.conf", "x 1;\n");
        tmp.write("conf.d/site.conf", "include snippets/x.conf;\n");
        let main = tmp.write("nginx.conf", "include conf.d/*.conf;\n");
        let d = parse_file(&main).expect("parses");
        assert_eq!(d.len(), 1);
        assert_eq!(*d[0].pos.file, tmp.0.join("snippets/x.conf"));
    }

    #[test]
    fn glob_include_is_sorted() {
        let tmp = TempDir::new("glob");
        tmp.write("conf.d/b.conf", "second;");
        tmp.write("conf.d/a.conf", "first;");
        tmp.write("conf.d/.hidden.conf", "hidden;");
        tmp.write("conf.d/c.txt", "other;");
        std::fs::create_dir_all(tmp.0.join("conf.d/sub.conf")).expect("mkdir");
        let main = tmp.write("nginx.conf", "include conf.d/*.conf;\nlast;");
        let names: Vec<String> = parse_file(&main)
            .expect("parses")
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["first", "second", "last"]);
    }

    #[test]
    fn glob_include_without_matches_is_fine() {
        let tmp = TempDir::new("empty");
        let main = tmp.write("nginx.conf", "include sites-enabled/*;\na;");
        assert_eq!(parse_file(&main).expect("parses").len(), 1);
    }

    #[test]
    fn missing_include_file() {
        let tmp = TempDir::new("missing");
        let main = tmp.write("nginx.conf", "a;\ninclude mime.types;\n");
        let e = parse_file(&main).expect_err("must fail");
        let want = format!(
            "open() \"{}\" failed (No such file or directory)",
            tmp.0.join("mime.types").display()
        );
        assert_eq!((e.pos.line, e.msg.as_str()), (2, want.as_str()));
        assert_eq!(*e.pos.file, main);
        let e = parse_file(&tmp.0.join("none.conf")).expect_err("must fail");
        assert!(
            e.msg.ends_with("failed (No such file or directory)"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn include_errors() {
        let tmp = TempDir::new("errs");
        tmp.write("bad.conf", "a;\nb {\n");
        let main = tmp.write("nginx.conf", "include bad.conf;");
        let e = parse_file(&main).expect_err("must fail");
        assert_eq!(*e.pos.file, tmp.0.join("bad.conf"));
        assert_eq!(
            (e.pos.line, e.msg.as_str()),
            (3, "unexpected end of file, expecting \"}\"")
        );
        let args = "invalid number of arguments in \"include\" directive";
        assert_eq!(fail("a;\ninclude;"), (2, 1, args.into()));
        assert_eq!(fail("include a b;"), (1, 1, args.into()));
        assert_eq!(
            fail("include x {}"),
            (
                1,
                1,
                "directive \"include\" is not terminated by \";\"".into()
            )
        );
    }

    #[test]
    fn include_cycle() {
        let tmp = TempDir::new("cycle");
        tmp.write("a.conf", "x;\ninclude b.conf;");
        tmp.write("b.conf", "include a.conf;");
        let e = parse_file(&tmp.0.join("a.conf")).expect_err("must fail");
        assert!(e.msg.starts_with("too deep include nesting"), "{}", e.msg);
        assert_eq!(*e.pos.file, tmp.0.join("b.conf"));
        tmp.write("self.conf", "include *.conf;");
        assert!(parse_file(&tmp.0.join("self.conf")).is_err());
    }

    #[test]
    fn include_depth_is_limited() {
        let tmp = TempDir::new("depth");
        for i in 0..40 {
            tmp.write(&format!("{i}.conf"), &format!("include {}.conf;", i + 1));
        }
        tmp.write("40.conf", "end;");
        let e = parse_file(&tmp.0.join("0.conf")).expect_err("must fail");
        assert_eq!(e.msg, "too deep include nesting");
        assert!(parse_file(&tmp.0.join("20.conf")).is_ok());
    }

    #[test]
    fn include_fan_out_is_bounded() {
        let tmp = TempDir::new("fan");
        for i in 0..30 {
            let next = format!("include {}.conf;\n", i + 1);
            tmp.write(&format!("{i}.conf"), &next.repeat(2));
        }
        tmp.write("30.conf", "end;");
        let e = parse_file(&tmp.0.join("0.conf")).expect_err("must fail");
        assert_eq!(e.msg, "too many included files");
    }

    const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nginx");

    fn conf_files(dir: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("examples folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn example_configs_parse() {
        let files = conf_files(EXAMPLES);
        assert!(files.len() >= 4);
        for file in files {
            let d = parse_file(&file).unwrap_or_else(|e| panic!("{e}"));
            assert!(d.iter().any(|d| d.name == "http"), "{}", file.display());
        }
        let d = parse_file(&Path::new(EXAMPLES).join("tutorial-3apps.conf")).expect("parses");
        let location = &d[2].block.as_ref().expect("http")[2]
            .block
            .as_ref()
            .expect("server")[1];
        let if_args: Vec<(&str, bool)> = location.block.as_ref().expect("location")[0]
            .args
            .iter()
            .map(|a| (a.value.as_str(), a.quoted))
            .collect();
        assert_eq!(
            if_args,
            [
                ("($http_app", false),
                ("=", false),
                ("app1", true),
                (")", false)
            ]
        );
    }

    #[test]
    fn bad_example_configs() {
        let bad = format!("{EXAMPLES}/bad");
        for file in conf_files(&bad) {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let result = parse_file(&file);
            match name {
                "missing-semicolon.conf" => {
                    let e = result.expect_err("must fail");
                    assert_eq!(e.msg, "directive \"server\" is not terminated by \";\"");
                    assert_eq!(e.pos.line, 3);
                }
                "unbalanced-brace.conf" => {
                    let e = result.expect_err("must fail");
                    assert_eq!(e.msg, "unexpected end of file, expecting \"}\"");
                    assert!(matches!(e.pos.line, 6 | 7), "{e}");
                }
                _ => assert!(result.is_ok(), "{name}: {:?}", result.err()),
            }
        }
    }

    fn render_arg((value, quoted): &(String, bool), out: &mut String) {
        if !quoted {
            out.push_str(value);
            return;
        }
        let q = if value.contains('"') { '\'' } else { '"' };
        out.push(q);
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c == q => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        out.push(q);
    }

    fn render(nodes: &[Plain], indent: usize, out: &mut String) {
        for n in nodes {
            out.push_str(&"    ".repeat(indent));
            out.push_str(&n.name);
            for arg in &n.args {
                out.push(' ');
                render_arg(arg, out);
            }
            match &n.block {
                None => out.push_str(";\n"),
                Some(block) => {
                    out.push_str(" {\n");
                    render(block, indent + 1, out);
                    out.push_str(&"    ".repeat(indent));
                    out.push_str("}\n");
                }
            }
        }
    }

    fn arb_name() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "server",
            "listen",
            "location",
            "if",
            "a",
            "b_c",
            "proxy_pass",
        ])
        .prop_map(String::from)
    }

    fn arb_arg() -> impl Strategy<Value = (String, bool)> {
        prop_oneof![
            "[a-z0-9_./:$=()-]{1,8}".prop_map(|s| (s, false)),
            "[a-z \"'\\\\\t\r\n;{}#$]{0,8}".prop_map(|s| (s, true)),
        ]
    }

    fn arb_tree() -> impl Strategy<Value = Vec<Plain>> {
        let leaf =
            (arb_name(), prop::collection::vec(arb_arg(), 0..4)).prop_map(|(name, args)| Plain {
                name,
                args,
                block: None,
            });
        let node = leaf.prop_recursive(3, 48, 4, |inner| {
            (
                arb_name(),
                prop::collection::vec(arb_arg(), 0..3),
                prop::collection::vec(inner, 0..4),
            )
                .prop_map(|(name, args, block)| Plain {
                    name,
                    args,
                    block: Some(block),
                })
        });
        prop::collection::vec(node, 0..6)
    }

    /// Valid configs to mutate: the examples plus the trickier corners of the syntax.
    fn seeds() -> Vec<String> {
        let mut seeds: Vec<String> = conf_files(EXAMPLES)
            .iter()
            .chain(conf_files(&format!("{EXAMPLES}/bad")).iter())
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect();
        seeds.push(
            "log_format main '$a \\'q\\' '\n  \"$b\\\"\";\nhttp { if ($x = \"y\"){ set $z ${x}1; } }\n"
                .into(),
        );
        seeds
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Truncate(prop::sample::Index),
        DeleteChars(Vec<prop::sample::Index>),
        DeleteAll(&'static str),
        FlipBytes(Vec<(prop::sample::Index, u8)>),
        DuplicateLines(Vec<prop::sample::Index>),
    }

    fn arb_mutation() -> impl Strategy<Value = Mutation> {
        use prop::sample::Index;
        prop_oneof![
            any::<Index>().prop_map(Mutation::Truncate),
            prop::collection::vec(any::<Index>(), 1..8).prop_map(Mutation::DeleteChars),
            prop::sample::select(vec!["{}", "{", "}", "\"'", "\"", "'", ";", "\n"])
                .prop_map(Mutation::DeleteAll),
            prop::collection::vec((any::<Index>(), any::<u8>()), 1..8)
                .prop_map(Mutation::FlipBytes),
            prop::collection::vec(any::<Index>(), 1..4).prop_map(Mutation::DuplicateLines),
        ]
    }

    fn mutate(text: &str, m: &Mutation) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        match m {
            Mutation::Truncate(i) => {
                chars.truncate(i.index(chars.len() + 1));
                chars.into_iter().collect()
            }
            Mutation::DeleteChars(idx) => {
                for i in idx {
                    if !chars.is_empty() {
                        chars.remove(i.index(chars.len()));
                    }
                }
                chars.into_iter().collect()
            }
            Mutation::DeleteAll(set) => text.chars().filter(|c| !set.contains(*c)).collect(),
            Mutation::FlipBytes(flips) => {
                let mut bytes = text.as_bytes().to_vec();
                for (i, b) in flips {
                    if !bytes.is_empty() {
                        let at = i.index(bytes.len());
                        bytes[at] ^= b | 1;
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Mutation::DuplicateLines(idx) => {
                let mut lines: Vec<&str> = text.lines().collect();
                for i in idx {
                    if !lines.is_empty() {
                        let at = i.index(lines.len());
                        lines.insert(at, lines[at]);
                    }
                }
                lines.join("\n")
            }
        }
    }

    proptest! {
        // `make fuzz` sets PROPTEST_CASES to a million.
        #![proptest_config(ProptestConfig::with_cases(crate::prop_cases(512)))]

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_str(Path::new(FILE), &String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn random_syntax_never_panics(text in "[a-z$ \t\n;{}#\"'\\\\()]{0,200}") {
            let _ = parse_str(Path::new(FILE), &text);
        }

        #[test]
        fn mutated_configs_never_panic(
            seed in prop::sample::select(seeds()),
            mutations in prop::collection::vec(arb_mutation(), 1..4),
        ) {
            let text = mutations.iter().fold(seed, |text, m| mutate(&text, m));
            let _ = parse_str(Path::new(FILE), &text);
        }

        #[test]
        fn rendered_trees_round_trip(tree in arb_tree()) {
            let mut text = String::new();
            render(&tree, 0, &mut text);
            let parsed = parse_str(Path::new(FILE), &text);
            prop_assert!(parsed.is_ok(), "{:?} for\n{}", parsed.err(), text);
            prop_assert_eq!(plain(&parsed.unwrap_or_default()), tree, "text:\n{}", text);
        }
    }
}
