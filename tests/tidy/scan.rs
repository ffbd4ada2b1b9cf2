//! Reading one source file: drops `#[cfg(test)]` items from its tokens and collects
//! every module path the remaining code names (`use` trees with their groups expanded,
//! inline paths, and paths written in `serde(with = …)` strings), each with its line.

use crate::lex::{Kind, Tok, lex};

/// A path the code names, relative to where it is written: the segments as written
/// (starting with `crate`, `super`, `self`, `microgateway` or any other name), and the
/// inline modules (`mod name { … }`) it sits in.
#[derive(Debug, Clone)]
pub struct PathRef {
    pub segments: Vec<String>,
    pub inline: Vec<String>,
    pub line: usize,
}

/// What one file declares and names.
#[derive(Debug, Default)]
pub struct FileScan {
    /// Modules declared with `mod name;` (their bodies live in other files).
    pub children: Vec<String>,
    /// Modules declared with `#[cfg(test)] mod name;`: test code, left out.
    pub test_children: Vec<String>,
    /// Every path the non-test code names.
    pub refs: Vec<PathRef>,
    /// Names this file re-exports with `pub use`, mapped to the path they come from
    /// (a glob re-export is stored under `*`).
    pub reexports: Vec<(String, Vec<String>)>,
    /// Names of the items this file defines at its top level (`struct X`, `fn x`, …).
    pub items: Vec<String>,
}

/// Removes every item behind `#[cfg(test)]` (tests may import anything); returns the
/// remaining tokens and the names of test-only file modules (`#[cfg(test)] mod name;`).
fn drop_test_items(toks: Vec<Tok>) -> (Vec<Tok>, Vec<String>) {
    let is = |t: &[Tok], k: usize, s: &str| t.get(k).is_some_and(|x| x.text == s);
    let mut out = Vec::new();
    let mut test_children = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let cfg_test = ["#", "[", "cfg", "(", "test", ")", "]"]
            .iter()
            .enumerate()
            .all(|(k, s)| is(&toks, i + k, s));
        if !cfg_test {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        i += 7;
        let start = i;
        let mut depth = 0i32;
        while i < toks.len() {
            match toks[i].text.as_str() {
                "(" | "[" => depth += 1,
                ")" | "]" => depth -= 1,
                ";" if depth == 0 => {
                    if i >= start + 2 && toks[i - 2].text == "mod" {
                        test_children.push(toks[i - 1].text.clone());
                    }
                    i += 1;
                    break;
                }
                "{" if depth == 0 => {
                    i = past_block(&toks, i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    (out, test_children)
}

/// The index after the block whose `{` is at `i`.
fn past_block(toks: &[Tok], mut i: usize) -> usize {
    let mut depth = 0;
    while i < toks.len() {
        match toks[i].text.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Expands one `use` tree starting at `i` under `prefix`; returns the index after it.
fn use_tree(
    toks: &[Tok],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, String)>,
) -> usize {
    while i < toks.len() {
        let t = &toks[i];
        match (&t.kind, t.text.as_str()) {
            (_, "::") => i += 1,
            (_, "*") => {
                out.push((prefix, "*".into()));
                return i + 1;
            }
            (_, "{") => {
                i += 1;
                while i < toks.len() && toks[i].text != "}" {
                    i = use_tree(toks, i, prefix.clone(), out);
                    if toks.get(i).is_some_and(|t| t.text == ",") {
                        i += 1;
                    }
                }
                return i + 1;
            }
            (Kind::Ident, "self") if !prefix.is_empty() && !is_seg(toks, i + 1, "::") => {
                let name = prefix.last().cloned().unwrap_or_default();
                out.push((prefix, name));
                return i + 1;
            }
            (Kind::Ident, name) => {
                prefix.push(name.to_string());
                i += 1;
                if is_seg(toks, i, "as") {
                    let alias = toks.get(i + 1).map(|t| t.text.clone()).unwrap_or_default();
                    out.push((prefix, alias));
                    return i + 2;
                }
                if !is_seg(toks, i, "::") {
                    out.push((prefix, name.to_string()));
                    return i;
                }
            }
            _ => return i,
        }
    }
    i
}

fn is_seg(toks: &[Tok], i: usize, s: &str) -> bool {
    toks.get(i).is_some_and(|t| t.text == s)
}

/// Scans one file's source.
pub fn scan(src: &str) -> FileScan {
    let (toks, test_children) = drop_test_items(lex(src));
    let mut scan = FileScan {
        test_children,
        ..FileScan::default()
    };
    // The inline modules open at this point, with the brace depth they close at.
    let mut inline: Vec<(String, i32)> = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let names =
            |inline: &[(String, i32)]| inline.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        match (&t.kind, t.text.as_str()) {
            (Kind::Punct, "{") => depth += 1,
            (Kind::Punct, "}") => {
                depth -= 1;
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            (Kind::Ident, "mod") if toks.get(i + 1).is_some_and(|n| n.kind == Kind::Ident) => {
                let name = toks[i + 1].text.clone();
                if is_seg(&toks, i + 2, ";") && inline.is_empty() {
                    scan.children.push(name);
                } else if is_seg(&toks, i + 2, "{") {
                    inline.push((name, depth));
                }
            }
            (Kind::Ident, "use") => {
                let public = i > 0 && (toks[i - 1].text == "pub" || toks[i - 1].text == ")");
                let mut out = Vec::new();
                let end = use_tree(&toks, i + 1, Vec::new(), &mut out);
                for (segments, name) in out {
                    if public && inline.is_empty() {
                        scan.reexports.push((name, segments.clone()));
                    }
                    scan.refs.push(PathRef {
                        segments,
                        inline: names(&inline),
                        line: t.line,
                    });
                }
                i = end;
                continue;
            }
            (Kind::Ident, "struct" | "enum" | "fn" | "trait" | "type" | "const" | "static")
                if inline.is_empty() && depth == 0 =>
            {
                if let Some(n) = toks.get(i + 1) {
                    scan.items.push(n.text.clone());
                }
            }
            (Kind::Ident, _)
                if is_seg(&toks, i + 1, "::") && (i == 0 || toks[i - 1].text != "::") =>
            {
                let mut segments = vec![t.text.clone()];
                let mut j = i + 1;
                while is_seg(&toks, j, "::")
                    && toks.get(j + 1).is_some_and(|n| n.kind == Kind::Ident)
                {
                    segments.push(toks[j + 1].text.clone());
                    j += 2;
                }
                scan.refs.push(PathRef {
                    segments,
                    inline: names(&inline),
                    line: t.line,
                });
                i = j;
                continue;
            }
            (Kind::Str, text) if is_path_string(text) && attribute_value(&toks, i) => {
                let segments = text.split("::").map(str::to_string).collect();
                scan.refs.push(PathRef {
                    segments,
                    inline: names(&inline),
                    line: t.line,
                });
            }
            _ => {}
        }
        i += 1;
    }
    scan
}

/// Whether the string at `i` is the value of a serde attribute naming a path
/// (`with`, `serialize_with`, `deserialize_with`, `default`).
fn attribute_value(toks: &[Tok], i: usize) -> bool {
    i >= 2
        && toks[i - 1].text == "="
        && matches!(
            toks[i - 2].text.as_str(),
            "with" | "serialize_with" | "deserialize_with" | "default"
        )
}

/// Whether a string literal is a module path such as `"crate::config::duration_serde"`.
fn is_path_string(text: &str) -> bool {
    let mut parts = text.split("::");
    matches!(parts.next(), Some("crate" | "super" | "self"))
        && text.contains("::")
        && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
}
