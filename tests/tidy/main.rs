//! Tidy: the module graph of `src/` has no import cycles, neither between top-level
//! modules nor between the files of one module directory, and every module imports only
//! its own layer or lower ones, as the "Layers" section of ARCHITECTURE.md lists them.
//!
//! Every path the non-test code names counts (`use` trees, inline `crate::…`, `super::…`
//! and `self::…` paths, `serde(with = "…")` strings, and `microgateway::…` in the
//! binary); `#[cfg(test)]` items are left out, since tests may import anything.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

mod graph;
mod lex;
mod scan;

use graph::{Edges, Tree, cycles};
use std::collections::BTreeMap;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn tree() -> Tree {
    let (tree, stray) = Tree::read(&Path::new(ROOT).join("src"));
    assert!(
        stray.is_empty(),
        "files no `mod` declaration reaches: {stray:?}"
    );
    tree
}

fn graphs() -> BTreeMap<String, Edges> {
    tree().graphs()
}

/// The layers of ARCHITECTURE.md, lowest first: every numbered line of its "Layers"
/// section, with the backquoted module names on it.
fn layers() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Layers\n"))
        .expect("ARCHITECTURE.md has a \"## Layers\" section");
    section
        .lines()
        .filter(|l| {
            l.split_once(". ")
                .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
        })
        .map(|l| {
            l.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[test]
fn no_cycles_between_top_level_modules() {
    let graphs = graphs();
    let found = cycles(&graphs[""]);
    assert!(
        found.is_empty(),
        "import cycles between top-level modules:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_cycles_between_the_files_of_a_module() {
    let mut found = Vec::new();
    for (dir, edges) in graphs().iter().filter(|(dir, _)| !dir.is_empty()) {
        found.extend(cycles(edges).into_iter().map(|c| format!("in {dir}: {c}")));
    }
    assert!(
        found.is_empty(),
        "import cycles between the files of a module:\n{}",
        found.join("\n")
    );
}

#[test]
fn modules_import_only_their_own_layer_or_lower_ones() {
    let layers = layers();
    assert!(
        layers.len() > 1,
        "no numbered layers in ARCHITECTURE.md: {layers:?}"
    );
    let mut layer_of = BTreeMap::new();
    for (index, names) in layers.iter().enumerate() {
        for name in names {
            let before = layer_of.insert(name.as_str(), index);
            assert!(before.is_none(), "`{name}` is listed in two layers");
        }
    }
    let tree = tree();
    let graphs = tree.graphs();
    let edges = &graphs[""];
    let mut problems = Vec::new();
    let modules = tree.top_level();
    for module in &modules {
        if !layer_of.contains_key(module.as_str()) {
            problems.push(format!("`{module}` has no layer in ARCHITECTURE.md"));
        }
    }
    for listed in layer_of.keys() {
        if !modules.iter().any(|m| m == listed) {
            problems.push(format!(
                "ARCHITECTURE.md lists `{listed}`, which is no module"
            ));
        }
    }
    for ((from, to), evidence) in edges {
        let (Some(a), Some(b)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str())) else {
            continue;
        };
        if b > a {
            problems.push(format!(
                "`{from}` (layer {}) imports `{to}` (layer {}): {evidence}",
                a + 1,
                b + 1
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "layer order broken:\n{}",
        problems.join("\n")
    );
}

/// The scanner expands grouped `use` trees, finds inline paths and ignores comments,
/// strings and test items.
#[test]
fn scanner_reads_use_trees_and_inline_paths() {
    let src = r#"
        use crate::{a, b::{c, d as e}, f::*};
        use super::{self, g};
        mod child;
        // use crate::commented;
        const S: &str = "crate::in_a_string";
        #[serde(with = "crate::h::duration")]
        fn x() { let _ = crate::i::j(); let _ = child::k; }
        #[cfg(test)]
        mod tests { use crate::only_tests; }
        #[cfg(test)]
        mod more_tests;
    "#;
    let scan = scan::scan(src);
    let paths: Vec<String> = scan.refs.iter().map(|r| r.segments.join("::")).collect();
    assert_eq!(
        paths,
        [
            "crate::a",
            "crate::b::c",
            "crate::b::d",
            "crate::f",
            "super",
            "super::g",
            "crate::h::duration",
            "crate::i::j",
            "child::k",
        ]
    );
    assert_eq!(scan.children, ["child"]);
    assert_eq!(scan.test_children, ["more_tests"]);
}
