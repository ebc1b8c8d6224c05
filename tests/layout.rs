//! The code's layout: the README's layout block names every source file, and no module of the
//! library imports a module that imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The binary's own modules (`main.rs` declares them); they use the library as `costagg::`.
const BINARY_FILES: [&str; 3] = ["src/main.rs", "src/cli.rs", "src/request.rs"];

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn source_files() -> Vec<String> {
    let mut files = Vec::new();
    files_under(Path::new("src"), &mut files);
    let mut names: Vec<String> = files
        .iter()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    names.sort();
    names
}

#[test]
fn the_readme_layout_block_names_every_source_file() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let start = readme.find("## Layout").expect("README has a Layout section");
    let block = &readme[start..];
    let block = &block[block.find("```").unwrap() + 3..];
    let block = &block[..block.find("```").unwrap()];
    let mut missing = Vec::new();
    for file in source_files() {
        let parts: Vec<&str> = file.split('/').collect();
        let named = match parts.as_slice() {
            [_, _] => block.contains(&file),
            [src, folder, name] if *name == "mod.rs" => block.contains(&format!("{src}/{folder}/")),
            [src, folder, name] => block.contains(&format!("{src}/{folder}/")) && block.contains(name),
            [src, folder, sub, ..] => {
                block.contains(&format!("{src}/{folder}/")) && block.contains(&format!("{sub}/"))
            }
            _ => false,
        };
        if !named {
            missing.push(file);
        }
    }
    assert!(
        missing.is_empty(),
        "the README's layout block does not name {missing:?}"
    );
}

/// `src/input/quality.rs` → `input::quality`; `src/input/mod.rs` → `input`.
fn module_of(file: &str) -> String {
    let path = file.trim_start_matches("src/").trim_end_matches(".rs");
    path.trim_end_matches("/mod").replace('/', "::")
}

/// The file's text up to its unit tests (`#[cfg(test)]`), which may use anything.
fn non_test_code(file: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The modules `code` (of `module`) names through `crate::` or `super::` paths, resolved to
/// the longest known module.
fn imports(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("crate::") || w.starts_with("super::"))
        .collect();
    for word in words {
        let mut path: Vec<&str> = module.split("::").collect();
        let mut rest = word;
        if let Some(r) = rest.strip_prefix("crate::") {
            path.clear();
            rest = r;
        }
        while let Some(r) = rest.strip_prefix("super::") {
            path.pop();
            rest = r;
        }
        path.extend(rest.split("::").filter(|s| !s.is_empty()));
        while !path.is_empty() {
            let candidate = path.join("::");
            if known.contains(&candidate) {
                found.insert(candidate);
                break;
            }
            path.pop();
        }
    }
    found
}

/// A cycle in `edges`, as the modules along it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

/// Edges between modules, leaving out a module's own children and parents (a parent declares
/// its children, and children use their parent's types).
#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let files: Vec<String> = source_files()
        .into_iter()
        .filter(|f| !BINARY_FILES.contains(&f.as_str()) && f != "src/lib.rs")
        .filter(|f| !f.contains("/tests/"))
        .collect();
    let known: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let related =
        |a: &str, b: &str| a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"));
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        let top_of = |m: &str| m.split("::").next().unwrap().to_string();
        for import in imports(&module, &non_test_code(file), &known) {
            if !related(&module, &import) {
                edges.entry(module.clone()).or_default().insert(import.clone());
            }
            if top_of(&module) != top_of(&import) {
                top.entry(top_of(&module)).or_default().insert(top_of(&import));
            }
        }
    }
    assert!(
        edges.contains_key("run"),
        "the scan found the run module's imports: {edges:?}"
    );
    assert_eq!(
        find_cycle(&top),
        None,
        "top-level modules import each other: {top:#?}"
    );
    assert_eq!(find_cycle(&edges), None, "modules import each other: {edges:#?}");
}
