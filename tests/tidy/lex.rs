//! A small lexer for Rust source: identifiers, `::`, single punctuation characters and
//! string literal contents, each with its line; comments, character literals and
//! lifetimes' quotes are dropped.

/// One token of Rust source: an identifier, a string literal's content, or punctuation.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Ident,
    Str,
    Punct,
}

/// A token and the line it starts on.
#[derive(Debug, Clone)]
pub struct Tok {
    pub kind: Kind,
    pub text: String,
    pub line: usize,
}

/// Splits `src` into tokens.
pub fn lex(src: &str) -> Vec<Tok> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' || ((c == 'r' || c == 'b') && raw_or_byte_string(&chars, i)) {
            let start_line = line;
            let (text, end) = string(&chars, i, &mut line);
            toks.push(Tok {
                kind: Kind::Str,
                text,
                line: start_line,
            });
            i = end;
        } else if c == '\'' {
            i = quote(&chars, i);
        } else if c.is_alphanumeric()
            || c == '_'
            || (c == '$' && next.is_some_and(char::is_alphabetic))
        {
            let start = if c == '$' { i + 1 } else { i };
            i = start;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            toks.push(Tok {
                kind: Kind::Ident,
                text,
                line,
            });
        } else if c == ':' && next == Some(':') {
            toks.push(Tok {
                kind: Kind::Punct,
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            toks.push(Tok {
                kind: Kind::Punct,
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    toks
}

/// Whether `r"…"`, `r#"…"#`, `b"…"` or `br"…"` starts at `i` (and not an identifier).
fn raw_or_byte_string(chars: &[char], i: usize) -> bool {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return false;
    }
    let mut j = i;
    if chars[j] == 'b' {
        j += 1;
    }
    if chars.get(j) == Some(&'r') {
        j += 1;
        while chars.get(j) == Some(&'#') {
            j += 1;
        }
    }
    j > i && chars.get(j) == Some(&'"')
}

/// Reads a string literal starting at `i`; returns its content and the index after it.
fn string(chars: &[char], mut i: usize, line: &mut usize) -> (String, usize) {
    let mut raw = false;
    if chars[i] == 'b' {
        i += 1;
    }
    let mut hashes = 0;
    if chars[i] == 'r' {
        raw = true;
        i += 1;
        while chars[i] == '#' {
            hashes += 1;
            i += 1;
        }
    }
    i += 1;
    let mut text = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            *line += 1;
        }
        if !raw && c == '\\' {
            i += 2;
            continue;
        }
        if c == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) {
            return (text, i + 1 + hashes);
        }
        text.push(c);
        i += 1;
    }
    (text, i)
}

/// Skips a character literal, or only the quote of a lifetime, starting at `i`.
fn quote(chars: &[char], i: usize) -> usize {
    if chars.get(i + 1) == Some(&'\\') {
        let mut j = i + 2;
        while j < chars.len() && chars[j] != '\'' {
            j += 1;
        }
        return j + 1;
    }
    if chars.get(i + 2) == Some(&'\'') {
        return i + 3;
    }
    i + 1
}
