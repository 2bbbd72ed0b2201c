//! Tokenizer for nginx configuration syntax, following nginx's `ngx_conf_read_token`.

use std::fmt;
use std::iter::Peekable;
use std::path::PathBuf;
use std::str::Chars;
use std::sync::Arc;

/// A position in a config file (1-based line and column; column counts chars).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<PathBuf>,
    pub line: u32,
    pub col: u32,
}

/// A syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub msg: String,
}

impl SyntaxError {
    /// An error at `pos` with nginx's wording `msg`.
    pub fn new(pos: Pos, msg: impl Into<String>) -> Self {
        SyntaxError {
            pos,
            msg: msg.into(),
        }
    }
}

/// nginx's shape: `unexpected "}" in /etc/nginx/nginx.conf:7:1`.
impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Pos { file, line, col } = &self.pos;
        write!(f, "{} in {}:{line}:{col}", self.msg, file.display())
    }
}

impl std::error::Error for SyntaxError {}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A directive name or argument; `quoted` if it was written in `"..."` or `'...'`.
    Word {
        value: String,
        quoted: bool,
    },
    Semicolon,
    OpenBrace,
    CloseBrace,
}

/// One token with where it starts and where it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    /// Position of the token's first char (the opening quote for quoted words).
    pub pos: Pos,
    /// Position just after the token's last char: where a missing `;` belongs.
    pub end: Pos,
}

/// All tokens of one file, plus where the file ends (for "unexpected end of file").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub list: Vec<Token>,
    pub eof: Pos,
}

/// Splits `text` (the contents of `file`) into tokens; comments and whitespace are dropped.
pub fn tokenize(file: &Arc<PathBuf>, text: &str) -> Result<Tokens, SyntaxError> {
    let mut lx = Lexer {
        chars: text.chars().peekable(),
        file,
        line: 1,
        col: 1,
    };
    let mut list = Vec::new();
    while let Some(c) = lx.peek() {
        let pos = lx.pos();
        let kind = match c {
            ' ' | '\t' | '\r' | '\n' => {
                lx.bump();
                continue;
            }
            '#' => {
                lx.skip_comment();
                continue;
            }
            ';' | '{' | '}' => {
                lx.bump();
                match c {
                    ';' => TokenKind::Semicolon,
                    '{' => TokenKind::OpenBrace,
                    _ => TokenKind::CloseBrace,
                }
            }
            '"' | '\'' => lx.quoted(c)?,
            _ => lx.bare(),
        };
        list.push(Token {
            kind,
            pos,
            end: lx.pos(),
        });
    }
    Ok(Tokens {
        list,
        eof: lx.pos(),
    })
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

struct Lexer<'a> {
    chars: Peekable<Chars<'a>>,
    file: &'a Arc<PathBuf>,
    line: u32,
    col: u32,
}

impl Lexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            file: Arc::clone(self.file),
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    /// A `"..."` or `'...'` word, starting at its opening quote `q`.
    fn quoted(&mut self, q: char) -> Result<TokenKind, SyntaxError> {
        let start = self.pos();
        self.bump();
        let mut value = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(SyntaxError::new(
                        start,
                        "unexpected end of file, expecting closing quote",
                    ));
                }
                Some('\\') => match self.peek() {
                    Some(c @ ('"' | '\'' | '\\')) => {
                        self.bump();
                        value.push(c);
                    }
                    Some(c @ ('t' | 'r' | 'n')) => {
                        self.bump();
                        value.push(match c {
                            't' => '\t',
                            'r' => '\r',
                            _ => '\n',
                        });
                    }
                    // nginx keeps an unknown escape as written; the next char is read as usual.
                    _ => value.push('\\'),
                },
                Some(c) if c == q => break,
                Some(c) => value.push(c),
            }
        }
        // `)` is allowed so that `if ($a = "b")` works; it then starts a word of its own.
        match self.peek() {
            None => {}
            Some(c) if is_space(c) || matches!(c, ';' | '{' | '}' | ')') => {}
            Some(c) => return Err(SyntaxError::new(self.pos(), format!("unexpected \"{c}\""))),
        }
        Ok(TokenKind::Word {
            value,
            quoted: true,
        })
    }

    /// An unquoted word. The caller guarantees the first char does not end a word, so
    /// at least one char is consumed.
    fn bare(&mut self) -> TokenKind {
        let mut value = String::new();
        // After `$`, a `{` opens a `${var}` that belongs to the word, up to its `}`.
        let mut after_dollar = false;
        let mut in_var = false;
        while let Some(c) = self.peek() {
            if is_space(c) || c == ';' || (c == '{' && !after_dollar) || (c == '}' && !in_var) {
                break;
            }
            self.bump();
            value.push(c);
            if c == '\\' {
                // An escaped char never ends the word; both chars are kept as written.
                if let Some(next) = self.bump() {
                    value.push(next);
                }
                after_dollar = false;
                continue;
            }
            match c {
                '{' => in_var = true,
                '}' => in_var = false,
                _ => {}
            }
            after_dollar = c == '$';
        }
        TokenKind::Word {
            value,
            quoted: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<TokenKind> {
        let file = Arc::new(PathBuf::from("t.conf"));
        tokenize(&file, text)
            .expect("tokenizes")
            .list
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn err(text: &str) -> SyntaxError {
        let file = Arc::new(PathBuf::from("t.conf"));
        tokenize(&file, text).expect_err("must fail")
    }

    fn bare(s: &str) -> TokenKind {
        TokenKind::Word {
            value: s.into(),
            quoted: false,
        }
    }

    fn quoted(s: &str) -> TokenKind {
        TokenKind::Word {
            value: s.into(),
            quoted: true,
        }
    }

    use TokenKind::{CloseBrace as C, OpenBrace as O, Semicolon as S};

    #[test]
    fn punctuation_and_whitespace() {
        assert_eq!(
            toks("a b;\r\n\tc{d;}"),
            [bare("a"), bare("b"), S, bare("c"), O, bare("d"), S, C]
        );
        assert_eq!(toks(""), []);
        assert_eq!(toks("  \n\t "), []);
    }

    #[test]
    fn comments() {
        assert_eq!(
            toks("# all\na; # tail { ; }\nb;#x"),
            [bare("a"), S, bare("b"), S]
        );
        assert_eq!(toks("a#b;"), [bare("a#b"), S]);
        assert_eq!(toks("\"a # b\";"), [quoted("a # b"), S]);
        assert_eq!(toks("# only a comment"), []);
    }

    #[test]
    fn both_quote_kinds() {
        assert_eq!(
            toks("\"a b\" 'c d' '' \"\";"),
            [quoted("a b"), quoted("c d"), quoted(""), quoted(""), S]
        );
        assert_eq!(toks("'a\"b' \"a'b\""), [quoted("a\"b"), quoted("a'b")]);
        assert_eq!(toks("\"x;{}#\""), [quoted("x;{}#")]);
    }

    #[test]
    fn escapes_in_quotes() {
        assert_eq!(
            toks(r#""a\"b" 'c\'d' "e\\f""#),
            [quoted("a\"b"), quoted("c'd"), quoted("e\\f")]
        );
        assert_eq!(toks(r#""\t\r\n" '\n'"#), [quoted("\t\r\n"), quoted("\n")]);
        assert_eq!(toks(r#""\d\." "a\"""#), [quoted("\\d\\."), quoted("a\"")]);
    }

    #[test]
    fn quoted_string_spans_lines() {
        assert_eq!(toks("'a\nb'"), [quoted("a\nb")]);
        let file = Arc::new(PathBuf::from("t.conf"));
        let t = tokenize(&file, "x 'a\nbc' y").expect("tokenizes");
        assert_eq!((t.list[2].pos.line, t.list[2].pos.col), (2, 5));
        assert_eq!((t.list[1].end.line, t.list[1].end.col), (2, 4));
    }

    #[test]
    fn after_closing_quote() {
        assert_eq!(
            toks("\"a\";\"b\"{\"c\"}'d'"),
            [quoted("a"), S, quoted("b"), O, quoted("c"), C, quoted("d")]
        );
        assert_eq!(toks("\"a\")x"), [quoted("a"), bare(")x")]);
        let e = err("a \"b\"c;");
        assert_eq!(e.msg, "unexpected \"c\"");
        assert_eq!((e.pos.line, e.pos.col), (1, 6));
        assert_eq!(err("'b'#").msg, "unexpected \"#\"");
        assert_eq!(err("'b''c'").msg, "unexpected \"'\"");
    }

    #[test]
    fn if_condition() {
        assert_eq!(
            toks("if ($http_app = \"app1\"){"),
            [
                bare("if"),
                bare("($http_app"),
                bare("="),
                quoted("app1"),
                bare(")"),
                O
            ]
        );
    }

    #[test]
    fn bare_words() {
        assert_eq!(toks("a\"b\" c'd;"), [bare("a\"b\""), bare("c'd"), S]);
        assert_eq!(
            toks(r#"a\;b \{ c\ d \""#),
            [bare(r"a\;b"), bare(r"\{"), bare(r"c\ d"), bare(r#"\""#)]
        );
        assert_eq!(toks("x}"), [bare("x"), C]);
    }

    #[test]
    fn variables_with_braces() {
        assert_eq!(toks("${host}x;"), [bare("${host}x"), S]);
        assert_eq!(toks("a${b}c${d} {"), [bare("a${b}c${d}"), O]);
        assert_eq!(toks("$a{"), [bare("$a"), O]);
        assert_eq!(toks("a}"), [bare("a"), C]);
        assert_eq!(toks("${a b}"), [bare("${a"), bare("b"), C]);
    }

    #[test]
    fn unterminated_quote() {
        let e = err("a;\n  b \"cd\n;");
        assert_eq!(e.msg, "unexpected end of file, expecting closing quote");
        assert_eq!((e.pos.line, e.pos.col), (2, 5));
        assert_eq!(
            err("'").msg,
            "unexpected end of file, expecting closing quote"
        );
        assert_eq!(
            err("'a\\'").msg,
            "unexpected end of file, expecting closing quote"
        );
    }

    #[test]
    fn positions_count_chars() {
        let file = Arc::new(PathBuf::from("t.conf"));
        let t = tokenize(&file, "é ü;\n\t  x").expect("tokenizes");
        let at: Vec<(u32, u32)> = t.list.iter().map(|t| (t.pos.line, t.pos.col)).collect();
        assert_eq!(at, [(1, 1), (1, 3), (1, 4), (2, 4)]);
        assert_eq!((t.list[1].end.line, t.list[1].end.col), (1, 4));
        assert_eq!((t.eof.line, t.eof.col), (2, 5));
    }

    #[test]
    fn display_names_file_and_line() {
        let e = err("'");
        assert_eq!(
            e.to_string(),
            "unexpected end of file, expecting closing quote in t.conf:1:1"
        );
    }
}
