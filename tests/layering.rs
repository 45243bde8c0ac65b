//! The rooms' dependency rule, checked from the source: every `crate::` and `super::` path in
//! `src/` is read, each room may only reach the rooms below it (ARCHITECTURE.md's table), and
//! inside a room the sub-modules form no cycle. Run alone with `cargo test --test layering`.
//! The tools (`tools/`, a crate of their own) reach the service only through its public API.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// What each room may import. A room absent from a list may not be reached from it; `lib.rs`
/// (the composition root that builds the app) may reach every room.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("model", &["domain"]),
    ("store", &["domain"]),
    ("config", &["domain", "model"]),
    ("telemetry", &[]),
    ("server", &[]),
    ("serve", &["config", "model", "store", "domain"]),
    ("learn", &["serve", "config", "model", "store", "domain"]),
    (
        "api",
        &[
            "serve",
            "learn",
            "config",
            "model",
            "store",
            "domain",
            "telemetry",
        ],
    ),
];

/// The module path of a source file: `src/serve/rank.rs` is `["serve", "rank"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The paths of a use tree that starts right after `prefix::`, cut to `depth` segments:
/// `{a::{b, c}, d}` at depth 2 gives `a::b`, `a::c` and `d`.
fn leaves(tree: &str, depth: usize) -> Vec<Vec<String>> {
    let tree = tree.trim_start();
    let items: Vec<&str> = match tree.strip_prefix('{') {
        Some(group) => {
            let mut out = Vec::new();
            let mut level = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => level += 1,
                    '}' if level == 0 => {
                        out.push(&group[start..i]);
                        break;
                    }
                    '}' => level -= 1,
                    ',' if level == 0 => {
                        out.push(&group[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            out
        }
        None => vec![tree],
    };
    let mut out = Vec::new();
    for item in items {
        let item = item.trim_start();
        let head = ident(item);
        if head.is_empty() || head == "self" {
            continue;
        }
        let rest = &item[head.len()..];
        match rest.strip_prefix("::") {
            Some(tail) if depth > 1 => {
                let below = leaves(tail, depth - 1);
                if below.is_empty() {
                    out.push(vec![head.to_owned()]);
                }
                for mut path in below {
                    path.insert(0, head.to_owned());
                    out.push(path);
                }
            }
            _ => out.push(vec![head.to_owned()]),
        }
    }
    out
}

/// The modules (as paths from the crate root, at most two segments deep) a file refers to.
fn references(module: &[String], text: &str) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    // Line comments hold prose such as "see crate::x", not dependencies.
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", module[..module.len().saturating_sub(1)].to_vec()),
    ] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            for path in leaves(rest, 2 - base.len().min(1)) {
                let mut full = base.clone();
                full.extend(path);
                full.truncate(2);
                out.insert(full);
            }
        }
    }
    out
}

struct Graph {
    /// (from module, to module) for every file, modules as full paths.
    edges: BTreeSet<(Vec<String>, Vec<String>)>,
    modules: BTreeSet<Vec<String>>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = BTreeSet::new();
    let mut modules = BTreeSet::new();
    for file in files {
        let module = module_of(&src, &file);
        modules.insert(module.clone());
        let text = fs::read_to_string(&file).unwrap();
        for to in references(&module, &text) {
            edges.insert((module.clone(), to));
        }
    }
    Graph { edges, modules }
}

#[test]
fn rooms_import_only_the_rooms_below_them() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let g = graph();
    let mut wrong = Vec::new();
    for (from, to) in &g.edges {
        let (Some(a), Some(b)) = (from.first(), to.first()) else {
            continue; // lib.rs composes the app: it may reach every room
        };
        if a == b {
            continue;
        }
        match allowed.get(a.as_str()) {
            Some(ok) if ok.contains(&b.as_str()) => {}
            Some(_) => wrong.push(format!("{} -> {}", from.join("::"), to.join("::"))),
            None => wrong.push(format!("{a} is in no room of ALLOWED (reached {b})")),
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the rule:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_cycle_between_the_modules_of_a_room() {
    let g = graph();
    // Within a room, an edge to the room's own root (its mod.rs) is the parent the pieces hang
    // off: not a dependency between pieces.
    let mut next: BTreeMap<&Vec<String>, Vec<&Vec<String>>> = BTreeMap::new();
    for (from, to) in &g.edges {
        let same_room = from.first() == to.first() && from.len() == 2 && to.len() == 2;
        if same_room && from != to && g.modules.contains(to) {
            next.entry(from).or_default().push(to);
        }
    }
    // Depth-first search; every back edge closes a cycle.
    fn visit<'a>(
        m: &'a Vec<String>,
        next: &BTreeMap<&'a Vec<String>, Vec<&'a Vec<String>>>,
        state: &mut BTreeMap<&'a Vec<String>, u8>,
        stack: &mut Vec<&'a Vec<String>>,
        cycles: &mut Vec<String>,
    ) {
        match state.get(m) {
            Some(2) => return,
            Some(1) => {
                let at = stack.iter().position(|s| *s == m).unwrap();
                let cycle: Vec<String> = stack[at..].iter().map(|s| s.join("::")).collect();
                cycles.push(format!("{} -> {}", cycle.join(" -> "), m.join("::")));
                return;
            }
            _ => {}
        }
        state.insert(m, 1);
        stack.push(m);
        for to in next.get(m).into_iter().flatten() {
            visit(to, next, state, stack, cycles);
        }
        stack.pop();
        state.insert(m, 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for m in next.keys() {
        visit(m, &next, &mut state, &mut Vec::new(), &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_reader_sees_what_the_rule_checks() {
    // The checker itself: it must see a use tree's modules, or the rule above proves nothing.
    let module = vec!["serve".to_owned(), "rank".to_owned()];
    let refs = references(
        &module,
        "use super::{catalog::CatalogView, demote::{a, b}, Serving};\n\
         use crate::{model::{scoring::Scores, topk}, store::StoreError};\n\
         let x = crate::learn::trainer::run(); // crate::api::nothing\n",
    );
    let refs: Vec<String> = refs.iter().map(|p| p.join("::")).collect();
    for want in [
        "serve::catalog",
        "serve::demote",
        "serve::Serving",
        "model::scoring",
        "model::topk",
        "store::StoreError",
        "learn::trainer",
    ] {
        assert!(
            refs.contains(&want.to_owned()),
            "{want} missing from {refs:?}"
        );
    }
    assert!(
        !refs.iter().any(|r| r.starts_with("api")),
        "comments are not imports"
    );
}

#[test]
fn only_model_simd_asks_the_cpu() {
    // Every kernel decides from the one cached answer of `model::simd::cpu()`; a second place
    // that asks is how three detection styles grew before (ARCHITECTURE.md, "a vector kernel").
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tools/src"), &mut files);
    let askers: Vec<String> = files
        .iter()
        .filter(|f| {
            fs::read_to_string(f)
                .unwrap()
                .contains("is_x86_feature_detected")
        })
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert_eq!(
        askers,
        ["src/model/simd.rs"],
        "files that detect CPU features"
    );
}
