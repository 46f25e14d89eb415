//! The library's modules import one way, and its public API stays small.
//!
//! The test reads `src/` (the library, not `src/bin/`), finds every `crate::`, `super::` and `self::`
//! path in code (comments and strings aside, `use` trees expanded), follows re-exports to the file that
//! defines what the path names, and fails on
//! - an import of a module from its own layer or a higher one (top-level modules; a module may use its
//!   own child files, and they each other, as long as there is no circle);
//! - any circle between files other than a parent module and its own child files;
//! - more public names than the budget: 40 for the engine (everything outside `credentials` and
//!   `server`), 15 each for `credentials` and `server` (items marked `#[doc(hidden)]` aside);
//! - a README whose architecture section does not draw [`LAYERS`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The layers, bottom up, with their top-level modules. The one place the layer order is written.
const LAYERS: &[(&str, &[&str])] = &[
    ("primitives", &["diagnostics", "rng", "s3path"]),
    ("matching", &["matching", "trie"]),
    ("config", &["config"]),
    ("check and requests", &["check", "resolve"]),
    ("engine and oracle", &["compile", "reference"]),
    ("explain", &["explain"]),
    ("uses", &["cases", "credentials", "diff", "policy", "synth"]),
    ("server", &["server"]),
];

const ENGINE_BUDGET: usize = 40;
const CREDENTIALS_BUDGET: usize = 15;
const SERVER_BUDGET: usize = 15;

/// A module of the library: its path (`crate::config::json`) and its file.
#[derive(Debug)]
struct Module {
    path: String,
    code: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library module, by path.
fn modules() -> BTreeMap<String, Module> {
    let mut modules = BTreeMap::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src()).unwrap().with_extension("");
            let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            let module = std::iter::once("crate".to_owned()).chain(parts).collect::<Vec<_>>().join("::");
            let code = strip(&std::fs::read_to_string(&path).unwrap());
            modules.insert(module.clone(), Module { path: module, code });
        }
    }
    modules
}

/// The code of a Rust file with comments, strings and character literals blanked out.
fn strip(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            i += end;
        } else if let Some(raw) = raw_string_start(rest) {
            let closing = format!("\"{}", "#".repeat(raw.hashes));
            let end = rest[raw.open..].find(&closing).map_or(rest.len(), |e| raw.open + e + closing.len());
            out.push_str("\"\"");
            i += end;
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() && rest.as_bytes()[j] != b'"' {
                j += if rest.as_bytes()[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i += (j + 1).min(rest.len());
        } else if rest.starts_with('\'') && char_literal_len(rest).is_some() {
            out.push_str("' '");
            i += char_literal_len(rest).unwrap();
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

struct RawString {
    open: usize,
    hashes: usize,
}

/// `r"`, `r#"`, `br#"` ... at the start of `text`.
fn raw_string_start(text: &str) -> Option<RawString> {
    let after_b = text.strip_prefix('b').unwrap_or(text);
    let after_r = after_b.strip_prefix('r')?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    after_r[hashes..].starts_with('"').then(|| RawString { open: text.len() - after_r.len() + hashes + 1, hashes })
}

/// The length of a character literal at the start of `text` (`'a'`, `'\n'`, `'\u{1b}'`), not a
/// lifetime.
fn char_literal_len(text: &str) -> Option<usize> {
    let body = &text[1..];
    if let Some(escaped) = body.strip_prefix('\\') {
        let close = escaped.find('\'')?;
        return (close <= 10).then_some(close + 3);
    }
    let c = body.chars().next()?;
    body[c.len_utf8()..].starts_with('\'').then_some(c.len_utf8() + 2)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Colons,
    Open,
    Close,
    Comma,
    Star,
    Other(char),
}

fn tokens(code: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
            continue;
        }
        match c {
            ':' if chars.get(i + 1) == Some(&':') => {
                out.push(Token::Colons);
                i += 2;
                continue;
            }
            '{' => out.push(Token::Open),
            '}' => out.push(Token::Close),
            ',' => out.push(Token::Comma),
            '*' => out.push(Token::Star),
            c if c.is_whitespace() => {}
            c => out.push(Token::Other(c)),
        }
        i += 1;
    }
    out
}

/// Every path of `tokens` that starts with `crate`, `super` or `self` followed by `::`, with `use` trees
/// expanded (`a::{b, c::d}` is `a::b` and `a::c::d`).
fn paths(tokens: &[Token]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts = matches!(&tokens[i], Token::Ident(w) if w == "crate" || w == "super" || w == "self")
            && tokens.get(i + 1) == Some(&Token::Colons)
            && !(i > 0 && tokens[i - 1] == Token::Colons);
        if starts {
            let (found, next) = tree(tokens, i, Vec::new());
            out.extend(found);
            i = next;
        } else {
            i += 1;
        }
    }
    out
}

/// Parses a path or use tree starting at `i`, below `prefix`: the paths and the position after it.
fn tree(tokens: &[Token], mut i: usize, mut prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    loop {
        match tokens.get(i) {
            Some(Token::Ident(word)) => {
                prefix.push(word.clone());
                i += 1;
                if tokens.get(i) == Some(&Token::Colons) {
                    i += 1;
                    continue;
                }
                return (vec![prefix], i);
            }
            Some(Token::Star) => return (vec![prefix], i + 1),
            Some(Token::Open) => {
                let mut found = Vec::new();
                i += 1;
                while !matches!(tokens.get(i), Some(Token::Close) | None) {
                    let (sub, next) = tree(tokens, i, prefix.clone());
                    found.extend(sub);
                    i = next;
                    // `as name` and anything else up to the next `,` or `}`.
                    while !matches!(tokens.get(i), Some(Token::Comma | Token::Close) | None) {
                        i += 1;
                    }
                    if tokens.get(i) == Some(&Token::Comma) {
                        i += 1;
                    }
                }
                return (found, i + 1);
            }
            _ => return (vec![prefix], i),
        }
    }
}

/// `path` made absolute from inside `module` (`super::x` in `crate::a::b` is `crate::a::x`).
fn absolute(module: &str, path: &[String]) -> Vec<String> {
    let mut base: Vec<String> = module.split("::").map(str::to_owned).collect();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base = vec!["crate".to_owned()];
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        _ => {}
    }
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    base
}

/// The re-exports of each module: name to the absolute path it stands for.
fn reexports(modules: &BTreeMap<String, Module>) -> HashMap<String, HashMap<String, Vec<String>>> {
    let mut table = HashMap::new();
    for module in modules.values() {
        let mut names = HashMap::new();
        for statement in module.code.split(';') {
            let statement = statement.trim_start();
            let Some(rest) = statement
                .strip_prefix("pub use ")
                .or_else(|| statement.strip_prefix("pub(crate) use "))
                .or_else(|| statement.find("\npub use ").map(|at| &statement[at + 9..]))
                .or_else(|| statement.find("\npub(crate) use ").map(|at| &statement[at + 16..]))
            else {
                continue;
            };
            let rest = rest.trim_start();
            let rest = if rest.starts_with("crate") || rest.starts_with("super") || rest.starts_with("self") {
                rest.to_owned()
            } else {
                format!("self::{rest}")
            };
            for path in paths(&tokens(&rest)) {
                let target = absolute(&module.path, &path);
                if let Some(name) = target.last() {
                    names.insert(name.clone(), target);
                }
            }
        }
        table.insert(module.path.clone(), names);
    }
    table
}

/// The module file that defines what `path` names, following re-exports (a chain of them is short; a
/// re-export of itself ends the search).
fn resolve(
    path: &[String],
    modules: &BTreeMap<String, Module>,
    reexports: &HashMap<String, HashMap<String, Vec<String>>>,
) -> Option<String> {
    // The longest prefix that is a module.
    let (module, rest) =
        (1..=path.len()).rev().map(|n| (path[..n].join("::"), &path[n..])).find(|(m, _)| modules.contains_key(m))?;
    let Some(first) = rest.first() else { return Some(module) };
    match reexports.get(&module).and_then(|names| names.get(first)) {
        Some(target) if target.as_slice() != path => {
            let mut next = target.clone();
            next.extend(rest[1..].iter().cloned());
            resolve(&next, modules, reexports).or(Some(module))
        }
        _ => Some(module),
    }
}

fn top(module: &str) -> &str {
    module.split("::").nth(1).unwrap_or("crate")
}

fn layer_of(module: &str) -> Option<usize> {
    let top = top(module);
    LAYERS.iter().position(|(_, members)| members.contains(&top))
}

/// Whether `a` is `b`'s parent module or the other way round.
fn parent_and_child(a: &str, b: &str) -> bool {
    let parent = |m: &str| m.rsplit_once("::").map(|(p, _)| p.to_owned());
    parent(a).as_deref() == Some(b) || parent(b).as_deref() == Some(a)
}

/// The edges between module files: importer to imported (each once), with the path that made it.
fn edges(modules: &BTreeMap<String, Module>) -> BTreeMap<(String, String), String> {
    let reexports = reexports(modules);
    let mut edges = BTreeMap::new();
    for module in modules.values() {
        for path in paths(&tokens(&module.code)) {
            let target = absolute(&module.path, &path);
            let Some(file) = resolve(&target, modules, &reexports) else { continue };
            if file != module.path && file != "crate" {
                edges.entry((module.path.clone(), file)).or_insert_with(|| path.join("::"));
            }
        }
    }
    edges
}

#[test]
fn every_module_is_in_a_layer_and_imports_only_from_below() {
    let modules = modules();
    let mut problems = Vec::new();
    for module in modules.keys().filter(|m| *m != "crate") {
        if layer_of(module).is_none() {
            problems.push(format!("`{module}` is in no layer: add `{}` to LAYERS in tests/layers.rs", top(module)));
        }
    }
    for ((from, to), path) in edges(&modules) {
        if from == "crate" || top(&from) == top(&to) {
            continue;
        }
        if let (Some(a), Some(b)) = (layer_of(&from), layer_of(&to))
            && b >= a
        {
            problems.push(format!(
                "`{from}` (layer {a}, {}) imports `{to}` (layer {b}, {}) through `{path}`",
                LAYERS[a].0, LAYERS[b].0
            ));
        }
    }
    assert!(problems.is_empty(), "imports against the layer order:\n{}", problems.join("\n"));
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    let modules = modules();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in edges(&modules).into_keys() {
        if from != "crate" && !parent_and_child(&from, &to) {
            graph.entry(from).or_default().insert(to);
        }
    }
    // Every circle shows as a path back to its start.
    let mut circles = BTreeSet::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, trail)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    let mut circle = trail.clone();
                    let smallest = circle.iter().enumerate().min_by_key(|(_, m)| m.as_str()).map(|(i, _)| i).unwrap();
                    circle.rotate_left(smallest);
                    circles.insert(circle.join(" -> "));
                } else if seen.insert(next.clone()) {
                    let mut trail = trail.clone();
                    trail.push(next.clone());
                    stack.push((next.clone(), trail));
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "files that import each other in a circle:\n{}",
        circles.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The names reachable from `module`'s public surface: its public items and re-exports, and those of
/// its public modules; `#[doc(hidden)]` items aside.
fn public_names(module: &str, modules: &BTreeMap<String, Module>, out: &mut BTreeSet<String>) {
    let Some(m) = modules.get(module) else { return };
    let code = &m.code;
    let (mut depth, mut hidden, mut at_line_start) = (0usize, false, true);
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        if depth == 0 && at_line_start {
            let trimmed = rest.trim_start_matches([' ', '\t']);
            if trimmed.starts_with("#[doc(hidden)]") {
                hidden = true;
            } else if let Some(item_text) = trimmed.strip_prefix("pub ") {
                // The whole statement: to its `;`, or to the `{` of a body (a `use` tree's braces are its own).
                let is_use = item_text.starts_with("use ");
                let end = if is_use { item_text.find(';') } else { item_text.find([';', '{']) };
                let statement = &item_text[..end.unwrap_or(item_text.len())];
                if !hidden {
                    item(module, statement, modules, out);
                }
                hidden = false;
                if is_use {
                    i += rest.len() - item_text.len() + end.unwrap_or(item_text.len());
                    continue;
                }
            } else if !trimmed.starts_with("#[") && !trimmed.starts_with('\n') {
                hidden = false;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at_line_start = c == '\n';
        i += c.len_utf8();
    }
}

fn item(module: &str, rest: &str, modules: &BTreeMap<String, Module>, out: &mut BTreeSet<String>) {
    let words: Vec<&str> = rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    match words.as_slice() {
        ["mod", name, ..] => public_names(&format!("{module}::{name}"), modules, out),
        ["use", ..] => {
            for path in paths(&tokens(&format!("self::{}", rest.trim_start_matches("use ")))) {
                if let Some(name) = path.last() {
                    out.insert(format!("{module}::{name}"));
                }
            }
        }
        ["fn" | "struct" | "enum" | "trait" | "type" | "const" | "static", name, ..] => {
            out.insert(format!("{module}::{name}"));
        }
        ["async", "fn", name, ..] | ["unsafe", "fn", name, ..] => {
            out.insert(format!("{module}::{name}"));
        }
        _ => {}
    }
}

#[test]
fn the_public_api_is_read_in_one_sitting() {
    let modules = modules();
    let mut names = BTreeSet::new();
    public_names("crate", &modules, &mut names);
    let (mut engine, mut credentials, mut server) = (Vec::new(), Vec::new(), Vec::new());
    for name in &names {
        match name.split("::").nth(1) {
            Some("credentials") => credentials.push(name.as_str()),
            Some("server") => server.push(name.as_str()),
            _ => engine.push(name.as_str()),
        }
    }
    let mut problems = Vec::new();
    for (part, names, budget) in [
        ("engine", &engine, ENGINE_BUDGET),
        ("credentials", &credentials, CREDENTIALS_BUDGET),
        ("server", &server, SERVER_BUDGET),
    ] {
        if names.len() > budget {
            problems.push(format!(
                "{part}: {} public names, more than {budget}:\n  {}",
                names.len(),
                names.join("\n  ")
            ));
        }
    }
    println!(
        "public names: {} engine, {} credentials, {} server\n  {}",
        engine.len(),
        credentials.len(),
        server.len(),
        engine.join("\n  ")
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Measured, so that a wrong count shows: the engine has at least its core types.
    for core in ["crate::Resolver", "crate::SecurityConfiguration", "crate::check", "crate::Diagnostic"] {
        assert!(names.contains(core), "`{core}` not counted: {names:?}");
    }
}

#[test]
fn the_readme_draws_the_layers() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let drawn: String = LAYERS
        .iter()
        .enumerate()
        .rev()
        .map(|(n, (name, members))| format!("{n}  {name:<20}{}\n", members.join(", ")))
        .collect();
    assert!(readme.contains(&drawn), "the README's architecture section should hold, exactly:\n{drawn}");
}

/// The checker itself, on code written to break each rule.
#[test]
fn the_checker_sees_what_it_must() {
    let code = strip(
        r#"use crate::{a::B, c::{D, e::F}}; // crate::commented
        let s = "crate::in_a_string"; let c = '{';
        fn f() { super::super::g::h(); self::k::L; }"#,
    );
    let found: Vec<String> = paths(&tokens(&code)).iter().map(|p| p.join("::")).collect();
    assert_eq!(found, ["crate::a::B", "crate::c::D", "crate::c::e::F", "super::super::g::h", "self::k::L"]);
    assert_eq!(absolute("crate::x::y", &["super".into(), "z".into()]).join("::"), "crate::x::z");
    assert!(parent_and_child("crate::config", "crate::config::json"));
    assert!(!parent_and_child("crate::config::build", "crate::config::json"));
}
