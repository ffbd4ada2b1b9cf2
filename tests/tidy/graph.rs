//! The module graph of `src/`: which file every path resolves to (through `pub use`
//! re-exports, so `crate::plugin::TokenUsage` lands on the file that defines it), and
//! the edges between top-level modules and between the files of one module directory.

use crate::scan::{FileScan, PathRef, scan};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library (`src/lib.rs`) or the binary (`src/main.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Crate {
    Lib,
    Bin,
}

/// A module: its crate and its path from the crate root.
pub type Module = (Crate, Vec<String>);

/// One parsed file.
struct File {
    path: PathBuf,
    scan: FileScan,
}

/// Edges of one graph, each with the first place in the source that makes it.
pub type Edges = BTreeMap<(String, String), String>;

/// Every module of both crates, and the files they live in.
pub struct Tree {
    /// The directory `src/` is in; places are shown relative to it.
    root: PathBuf,
    /// Where test-only file modules live (their file, or their directory).
    test_only: Vec<PathBuf>,
    modules: BTreeMap<Module, File>,
}

impl Tree {
    /// Reads every module reachable from `src/lib.rs` and `src/main.rs`; returns the
    /// tree and the `.rs` files under `src/` that no `mod` declaration reaches.
    pub fn read(src: &Path) -> (Tree, Vec<PathBuf>) {
        let root = src.parent().unwrap_or(src).to_path_buf();
        let mut tree = Tree {
            root,
            test_only: Vec::new(),
            modules: BTreeMap::new(),
        };
        tree.load(src, src.join("lib.rs"), (Crate::Lib, Vec::new()));
        tree.load(src, src.join("main.rs"), (Crate::Bin, Vec::new()));
        let seen: BTreeSet<&PathBuf> = tree.modules.values().map(|f| &f.path).collect();
        let mut stray = Vec::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !seen.contains(&path)
                    && !tree.test_only.iter().any(|t| path.starts_with(t))
                {
                    stray.push(path);
                }
            }
        }
        (tree, stray)
    }

    fn load(&mut self, src: &Path, path: PathBuf, module: Module) {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let scan = scan(&text);
        // Children of `lib.rs`, `main.rs` and `x/mod.rs` live next to them; those of
        // `x/y.rs` live in `x/y/`.
        let dir = if module.1.is_empty() {
            src.to_path_buf()
        } else if path.file_name().is_some_and(|n| n == "mod.rs") {
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            path.with_extension("")
        };
        for child in &scan.test_children {
            self.test_only.push(dir.join(format!("{child}.rs")));
            self.test_only.push(dir.join(child));
        }
        for child in &scan.children {
            let flat = dir.join(format!("{child}.rs"));
            let nested = dir.join(child).join("mod.rs");
            let file = if flat.exists() { flat } else { nested };
            let mut sub = module.1.clone();
            sub.push(child.clone());
            self.load(src, file, (module.0, sub));
        }
        self.modules.insert(module, File { path, scan });
    }

    /// The absolute path (crate and segments) of a path written in `from`, or `None`
    /// when it names something outside both crates.
    fn absolute(&self, from: &Module, file: &FileScan, r: &PathRef) -> Option<Module> {
        let mut scope = from.1.clone();
        scope.extend(r.inline.iter().cloned());
        let (krate, mut base, rest) = match r.segments.first()?.as_str() {
            "crate" => (from.0, Vec::new(), &r.segments[1..]),
            "microgateway" if from.0 == Crate::Bin => (Crate::Lib, Vec::new(), &r.segments[1..]),
            "self" => (from.0, scope, &r.segments[1..]),
            "super" => {
                let supers = r.segments.iter().take_while(|s| *s == "super").count();
                let keep = scope.len().checked_sub(supers)?;
                scope.truncate(keep);
                (from.0, scope, &r.segments[supers..])
            }
            name if r.inline.is_empty() && file.children.iter().any(|c| c == name) => {
                (from.0, from.1.clone(), &r.segments[..])
            }
            _ => return None,
        };
        base.extend(rest.iter().cloned());
        Some((krate, base))
    }

    /// The top-level modules of both crates, by the names the graphs use (`main` for
    /// the binary's root; the library's root `lib` is no module of any layer).
    pub fn top_level(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .modules
            .keys()
            .filter(|m| m.1.len() == 1 || (m.0 == Crate::Bin && m.1.is_empty()))
            .map(top)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The module whose file defines what `path` names, following re-exports.
    fn target(&self, path: &Module, hops: usize) -> Option<Module> {
        let (krate, segs) = path;
        // The longest prefix of the path that is a module.
        let mut len = segs.len();
        while !self.modules.contains_key(&(*krate, segs[..len].to_vec())) {
            len = len.checked_sub(1)?;
        }
        let module = (*krate, segs[..len].to_vec());
        let Some(name) = segs.get(len) else {
            return Some(module);
        };
        if hops == 0 {
            return Some(module);
        }
        let file = &self.modules.get(&module)?.scan;
        for (exported, from) in &file.reexports {
            if exported == name {
                let r = PathRef {
                    segments: from.clone(),
                    inline: Vec::new(),
                    line: 0,
                };
                let mut next = self.absolute(&module, file, &r)?;
                next.1.extend(segs[len + 1..].iter().cloned());
                return self.target(&next, hops - 1);
            }
        }
        if file.items.iter().any(|i| i == name) {
            return Some(module);
        }
        for (exported, from) in &file.reexports {
            if exported == "*" {
                let r = PathRef {
                    segments: from.clone(),
                    inline: Vec::new(),
                    line: 0,
                };
                let mut glob = self.absolute(&module, file, &r)?;
                glob.1.extend(segs[len..].iter().cloned());
                if let Some(found) = self.target(&glob, hops - 1)
                    && found.1.len() > module.1.len()
                {
                    return Some(found);
                }
            }
        }
        Some(module)
    }

    /// Every edge between modules, grouped by the module directory it lies in: the
    /// top-level graph under the key `""` (nodes `lib`, `main` and the top-level modules
    /// of both crates), and one graph per module with children (nodes: the names of its
    /// children).
    pub fn graphs(&self) -> BTreeMap<String, Edges> {
        let mut graphs: BTreeMap<String, Edges> = BTreeMap::new();
        for (from, file) in &self.modules {
            for r in &file.scan.refs {
                let Some(abs) = self.absolute(from, &file.scan, r) else {
                    continue;
                };
                let Some(to) = self.target(&abs, 8) else {
                    continue;
                };
                let shown = file.path.strip_prefix(&self.root).unwrap_or(&file.path);
                let evidence =
                    format!("{}:{} `{}`", shown.display(), r.line, r.segments.join("::"));
                let (top_from, top_to) = (top(from), top(&to));
                if top_from != top_to {
                    let edges = graphs.entry(String::new()).or_default();
                    edges.entry((top_from, top_to)).or_insert(evidence);
                    continue;
                }
                if from.0 != to.0 {
                    continue;
                }
                let common = from.1.iter().zip(&to.1).take_while(|(a, b)| a == b).count();
                let node = |m: &Module| {
                    m.1.get(common)
                        .cloned()
                        .unwrap_or_else(|| "mod".to_string())
                };
                let (a, b) = (node(from), node(&to));
                // A directory's own `mod.rs` is its face: it declares and uses its
                // children and they may use it, so only edges between siblings count.
                if a != b && a != "mod" && b != "mod" && common > 0 {
                    let edges = graphs.entry(from.1[..common].join("::")).or_default();
                    edges.entry((a, b)).or_insert(evidence);
                }
            }
        }
        graphs
    }
}

/// The top-level node of a module.
fn top(m: &Module) -> String {
    match (m.0, m.1.first()) {
        (_, Some(first)) => first.clone(),
        (Crate::Lib, None) => "lib".to_string(),
        (Crate::Bin, None) => "main".to_string(),
    }
}

/// The strongly connected components of the graph that hold a cycle, each with the
/// shortest cycle through every one of its nodes (`a → b → … → a`) and the place in the
/// source that makes every edge.
pub fn cycles(edges: &Edges) -> Vec<String> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(n) = stack.pop() {
            for m in next.get(n).into_iter().flatten() {
                if seen.insert(*m) {
                    stack.push(m);
                }
            }
        }
        seen
    };
    let nodes: BTreeSet<&str> = edges
        .keys()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    let reachable: BTreeMap<&str, BTreeSet<&str>> = nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(n) || !reachable[n].contains(n) {
            continue;
        }
        let component: Vec<&str> = nodes
            .iter()
            .copied()
            .filter(|m| reachable[n].contains(m) && reachable[m].contains(n))
            .collect();
        done.extend(component.iter().copied());
        let mut shortest: Vec<Vec<&str>> = Vec::new();
        for start in &component {
            let cycle = shortest_cycle(start, &component, &next);
            // The same cycle found from another of its nodes starts with its least node.
            let least = (0..cycle.len() - 1).min_by_key(|k| cycle[*k]).unwrap_or(0);
            let mut rotated: Vec<&str> = cycle[least..cycle.len() - 1].to_vec();
            rotated.extend_from_slice(&cycle[..least]);
            rotated.push(rotated[0]);
            if !shortest.contains(&rotated) {
                shortest.push(rotated);
            }
        }
        let mut text = format!("{{{}}}:", component.join(", "));
        for cycle in shortest {
            text.push_str(&format!("\n  {}", cycle.join(" → ")));
            for pair in cycle.windows(2) {
                let key = (pair[0].to_string(), pair[1].to_string());
                text.push_str(&format!(
                    "\n      {} → {}: {}",
                    pair[0], pair[1], edges[&key]
                ));
            }
        }
        out.push(text);
    }
    out
}

/// A shortest cycle from `start` back to it inside `component`, as its nodes with
/// `start` at both ends.
fn shortest_cycle<'a>(
    start: &'a str,
    component: &[&'a str],
    next: &BTreeMap<&'a str, Vec<&'a str>>,
) -> Vec<&'a str> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut last = start;
    'search: while let Some(n) = queue.pop_front() {
        for m in next.get(n).into_iter().flatten() {
            if *m == start {
                last = n;
                break 'search;
            }
            if component.contains(m) && !parent.contains_key(m) {
                parent.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    let mut path = vec![last];
    while let Some(p) = parent.get(path[path.len() - 1]) {
        path.push(p);
    }
    path.reverse();
    path.push(start);
    path
}
