//! The store's module map stays a map: modules import each other without a circle (shared
//! types live in their own modules, such as `queue.rs` and `rows.rs`, which both sides import),
//! and no source file outside the migrations grows past 600 lines. Roles are decided by the
//! permission table in the call layer only: the store checks reach and never a role. Requests
//! are parsed at the service edge: the store never refuses a request field by name.
//!
//! Imports are read from the source text: every `crate::` path (and a nested module's
//! `super::` path), outside comments and `#[cfg(test)] mod tests`, names the module it reaches
//! into; a name the crate root re-exports (`crate::Access`) counts as its defining module.
//! The crate root itself (`Store`, `write_txn`) is the hub everyone may use.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `dir`, with its module path (`scoring::coordinator`; `lib` is the
/// crate root).
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            modules(&path, &format!("{prefix}{name}::"), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.insert(format!("{prefix}{stem}"), path);
        }
    }
}

/// The text of a module without its comments and without its trailing test module.
fn code(text: &str) -> String {
    let text = match text.find("\nmod tests {") {
        Some(at) => text[..at].rfind("#[cfg(").map_or(&text[..at], |c| &text[..c]),
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            // `://` is inside a string (a URL), not a comment.
            Some(at) if !line[..at].ends_with(':') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segments of the paths after each `prefix` (`crate::a::b`, `crate::{a, b::c}`).
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    // `a::b::c` up to the first character that continues no path.
    let ident = |s: &str| -> Vec<String> {
        let mut segments = Vec::new();
        let mut rest = s.trim_start();
        loop {
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            if end == 0 {
                break;
            }
            segments.push(rest[..end].to_owned());
            match rest[end..].strip_prefix("::") {
                Some(next) => rest = next,
                None => break,
            }
        }
        segments
    };
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.push(ident(&item));
        } else {
            out.push(ident(rest));
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// Names the crate root re-exports, with the module each comes from.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(at) = statement.find("pub use ") else { continue };
        let statement = &statement[at + "pub use ".len()..];
        let Some((module, names)) = statement.split_once("::") else { continue };
        for name in
            names.trim_matches(|c: char| c == '{' || c == '}' || c.is_whitespace()).split(',')
        {
            let name = name.trim();
            if !name.is_empty() {
                out.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    out
}

/// Which modules each module imports (edges to the crate root left out).
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = BTreeMap::new();
    modules(src, "", &mut files);
    let lib = code(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let reexported = reexports(&lib);
    let resolve = |segments: &[String]| -> Option<String> {
        let first = segments.first()?;
        if files.contains_key(first.as_str()) && first != "lib" {
            // The deepest module the path names (`scoring::coordinator`, or `scoring`).
            let mut module = first.clone();
            for seg in &segments[1..] {
                let deeper = format!("{module}::{seg}");
                if !files.contains_key(&deeper) {
                    break;
                }
                module = deeper;
            }
            Some(module)
        } else {
            reexported.get(first).filter(|m| files.contains_key(m.as_str())).cloned()
        }
    };
    let mut graph = BTreeMap::new();
    for (module, path) in &files {
        if module == "lib" || module.ends_with("_tests") {
            continue;
        }
        let text = code(&std::fs::read_to_string(path).unwrap());
        let mut imports = BTreeSet::new();
        for segments in paths_after(&text, "crate::") {
            imports.extend(resolve(&segments));
        }
        if let Some((parent, _)) = module.rsplit_once("::") {
            for segments in paths_after(&text, "super::") {
                let mut full = parent.split("::").map(str::to_owned).collect::<Vec<_>>();
                full.extend(segments);
                imports.extend(resolve(&full));
            }
        }
        imports.remove(module);
        graph.insert(module.clone(), imports);
    }
    graph
}

/// A circle of imports in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn store_modules_import_each_other_without_a_circle() {
    let graph = import_graph(&src());
    // The reader sees what it should: the known edges are there.
    assert!(graph["ingest"].contains("queue"), "{:?}", graph["ingest"]);
    assert!(graph["scoring::transaction"].contains("rows"), "{:?}", graph["scoring::transaction"]);
    assert!(graph["scoring::coordinator"].contains("scoring::transaction"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("store modules import each other in a circle: {}", cycle.join(" -> "));
    }
}

#[test]
fn a_circle_of_imports_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let paths = paths_after("use crate::{audit::{self, Entry}, Access};", "crate::");
    assert_eq!(paths, [vec!["audit".to_owned()], vec!["Access".to_owned()]]);
}

#[test]
fn store_source_files_stay_under_600_lines() {
    let mut files = BTreeMap::new();
    modules(&src(), "", &mut files);
    let long: Vec<String> = files
        .iter()
        .filter(|(module, _)| !module.starts_with("migration::") && !module.ends_with("_tests"))
        .filter_map(|(module, path)| {
            let lines = std::fs::read_to_string(path).unwrap().lines().count();
            (lines > 600).then(|| format!("{module}: {lines} lines"))
        })
        .collect();
    assert!(long.is_empty(), "split these by concern: {long:?}");
}

#[test]
fn the_store_decides_reach_and_never_roles() {
    let mut files = BTreeMap::new();
    modules(&src(), "", &mut files);
    let mut offenders = Vec::new();
    for (module, path) in &files {
        if module.starts_with("migration") || module == "layout_tests" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for needle in
            ["principal.role()", ".role() ==", "require_role", "Role::Admin", "Role::Editor"]
        {
            if text.contains(needle) {
                offenders.push(format!("{module}: {needle}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "roles are the permission table's (kelvin_auth::PERMISSIONS), not the store's: {offenders:?}"
    );
}

#[test]
fn the_store_never_names_a_request_field() {
    let mut files = BTreeMap::new();
    modules(&src(), "", &mut files);
    let mut offenders = Vec::new();
    for (module, path) in &files {
        if module.starts_with("migration") || module == "layout_tests" {
            continue;
        }
        let text = code(&std::fs::read_to_string(path).unwrap());
        for needle in [
            "InvalidArgument",
            "invalid(",
            "\"page_token\"",
            "\"page_size\"",
            "\"display_name\"",
            "\"labels\"",
            "\"expire_time\"",
            "\"template.template_id\"",
            "\"template.display_name\"",
            "\"tenant.display_name\"",
        ] {
            if text.contains(needle) {
                offenders.push(format!("{module}: {needle}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "parse requests at the service edge (kelvin_store::ResourceId, DisplayName, Labels, \
         Page::parse; the service names the field with kelvin_server::At): {offenders:?}"
    );
}
