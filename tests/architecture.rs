//! The shape of `src/`: file and function sizes, an import graph without cycles, and references
//! that resolve inside the repository (every `§` into docs/method.md, no path outside, every test
//! the README and BENCHMARKS name).
//!
//! Limits: no file over 800 lines outside its tests (the pickle machine and the metrics may stay
//! whole), no function over 150 lines, no cycle between modules (at the top level and between the
//! files of one folder), and only the commands import the pipeline.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 150;
const WHOLE_FILES: [&str; 2] = ["src/model/weights/pickle.rs", "src/eval/metrics.rs"];

struct Source {
    /// Relative to the crate root, `/`-separated.
    rel: String,
    /// Code with comments, strings and characters blanked out (same lines and columns).
    code: String,
    /// Line ranges (0-based, inclusive) of `#[cfg(test)]` items.
    test_ranges: Vec<(usize, usize)>,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let code = blank(&text);
            let test_ranges = cfg_test_ranges(&code);
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            Source {
                rel,
                code,
                test_ranges,
            }
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn is_test_file(rel: &str) -> bool {
    rel.ends_with("/tests.rs") || rel.contains("/tests/")
}

/// Replaces comments, string and character literals by spaces, keeping newlines.
fn blank(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let keep_nl = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(keep_nl(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_'))
        {
            // Raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &b[i..j.min(b.len())] {
                out.push(keep_nl(ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(keep_nl(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..b.len().min(i + 12)).find(|&j| b[j] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    for _ in i..=e {
                        out.push(' ');
                    }
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Byte offset → 0-based line.
fn line_of(code: &str, offset: usize) -> usize {
    code[..offset].bytes().filter(|&c| c == b'\n').count()
}

/// The offset of the `}` matching the `{` at `open`.
fn matching(code: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0i64;
    for (i, &c) in code.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn cfg_test_ranges(code: &str) -> Vec<(usize, usize)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = code[from..].find("#[cfg(test)]") {
        let at = from + pos;
        let rest = &code[at..];
        // The attributed item: up to its first `;` or its braced body.
        let semi = rest.find(';');
        let brace = rest.find('{');
        match (brace, semi) {
            (Some(b), s) if s.is_none_or(|s| b < s) => {
                if let Some(end) = matching(bytes, at + b) {
                    out.push((line_of(code, at), line_of(code, end)));
                    from = end;
                    continue;
                }
            }
            _ => {}
        }
        from = at + 1;
    }
    out
}

fn in_tests(s: &Source, line: usize) -> bool {
    is_test_file(&s.rel) || s.test_ranges.iter().any(|&(a, b)| a <= line && line <= b)
}

/// (name, first line, lines) of every function with a body outside tests.
fn functions(s: &Source) -> Vec<(String, usize, usize)> {
    let code = &s.code;
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = code[from..].find("fn ") {
        let at = from + pos;
        from = at + 3;
        let before = if at == 0 { b' ' } else { bytes[at - 1] };
        if before.is_ascii_alphanumeric() || before == b'_' {
            continue;
        }
        let name: String = code[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue; // `fn(` types
        }
        let rest = &code[at..];
        let (Some(b), semi) = (rest.find('{'), rest.find(';')) else {
            continue;
        };
        if semi.is_some_and(|s| s < b) {
            continue; // a declaration without a body
        }
        let Some(end) = matching(bytes, at + b) else {
            continue;
        };
        let first = line_of(code, at);
        if in_tests(s, first) {
            continue;
        }
        out.push((name, first + 1, line_of(code, end) - first + 1));
    }
    out
}

#[test]
fn no_file_is_over_the_limit_outside_its_tests() {
    let mut over = Vec::new();
    for s in sources() {
        if is_test_file(&s.rel) || WHOLE_FILES.contains(&s.rel.as_str()) {
            continue;
        }
        let total = s.code.lines().count();
        let tests: usize = s.test_ranges.iter().map(|(a, b)| b - a + 1).sum();
        if total - tests > MAX_FILE_LINES {
            over.push(format!("{}: {} lines", s.rel, total - tests));
        }
    }
    assert!(over.is_empty(), "over {MAX_FILE_LINES} lines: {over:#?}");
}

#[test]
fn no_function_is_over_the_limit() {
    let mut over = Vec::new();
    let mut seen = 0;
    for s in sources() {
        for (name, line, len) in functions(&s) {
            seen += 1;
            if len > MAX_FN_LINES {
                over.push(format!("{}:{line} fn {name}: {len} lines", s.rel));
            }
        }
    }
    assert!(seen > 500, "the scanner found only {seen} functions");
    assert!(over.is_empty(), "over {MAX_FN_LINES} lines: {over:#?}");
}

/// The module a file belongs to at `depth` path components below `src/` (`src/a/b/c.rs` at depth
/// 1 is `a`, at depth 2 `a/b`).
fn module_of(rel: &str, depth: usize) -> Option<String> {
    let inner = rel.strip_prefix("src/")?.strip_suffix(".rs")?;
    let parts: Vec<&str> = inner.split('/').collect();
    if parts.len() < depth {
        return None;
    }
    let mut m: Vec<&str> = parts[..depth].to_vec();
    if m.last() == Some(&"mod") {
        m.pop();
    }
    (!m.is_empty()).then(|| m.join("/"))
}

/// Module paths named by `crate::a::b…` and `super::x` in the code outside tests.
fn references(s: &Source) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let here: Vec<String> = {
        let inner = s
            .rel
            .strip_prefix("src/")
            .unwrap()
            .strip_suffix(".rs")
            .unwrap();
        let mut p: Vec<String> = inner.split('/').map(str::to_string).collect();
        if p.last()
            .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
        {
            p.pop();
        }
        p
    };
    for (n, line) in s.code.lines().enumerate() {
        if in_tests(s, n) {
            continue;
        }
        for (prefix, base) in [
            ("crate::", Vec::new()),
            ("super::", {
                let mut b = here.clone();
                b.pop();
                b
            }),
        ] {
            let mut from = 0;
            while let Some(pos) = line[from..].find(prefix) {
                let at = from + pos + prefix.len();
                from = at;
                let path: Vec<String> = line[at..]
                    .split("::")
                    .map(|seg| {
                        seg.chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect::<String>()
                    })
                    .take_while(|seg| !seg.is_empty())
                    .collect();
                let mut full = base.clone();
                full.extend(path);
                // `use crate::x::{a, b}`: the braces name children of `x`.
                if line[at..].contains("::{") {
                    let open = at + line[at..].find("::{").unwrap() + 3;
                    let mut prefix_path = base.clone();
                    prefix_path.extend(
                        line[at..open - 3]
                            .split("::")
                            .map(str::to_string)
                            .filter(|x| !x.is_empty()),
                    );
                    for item in line[open..].split([',', '}']) {
                        let seg: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if !seg.is_empty() && seg != "self" {
                            let mut p = prefix_path.clone();
                            p.push(seg);
                            out.insert(p);
                        }
                    }
                }
                out.insert(full);
            }
        }
    }
    out
}

/// Edges between the modules of the same parent at `depth`.
fn graph(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let srcs = sources();
    let modules: BTreeSet<String> = srcs
        .iter()
        .filter_map(|s| module_of(&s.rel, depth))
        .collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &srcs {
        let Some(from) = module_of(&s.rel, depth) else {
            continue;
        };
        for path in references(s) {
            if path.len() < depth {
                continue;
            }
            let to = path[..depth].join("/");
            let same_parent =
                from.rsplit_once('/').map(|x| x.0) == to.rsplit_once('/').map(|x| x.0);
            if to != from && modules.contains(&to) && same_parent {
                g.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    g
}

fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|x| x == m).unwrap();
                    let mut c = stack[start..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_module_graph_has_no_cycles() {
    let top = graph(1);
    assert!(
        top.len() > 10,
        "the scanner found only {} modules",
        top.len()
    );
    assert!(
        top.get("pipeline").is_some_and(|d| d.contains("model")),
        "the scanner missed pipeline → model"
    );
    for depth in 1..=2 {
        let g = graph(depth);
        if let Some(c) = find_cycle(&g) {
            panic!("import cycle between modules: {}", c.join(" → "));
        }
    }
}

#[test]
fn only_the_commands_import_the_pipeline() {
    let g = graph(1);
    let users: Vec<&String> = g
        .iter()
        .filter(|(from, to)| to.contains("pipeline") && *from != "commands")
        .map(|(from, _)| from)
        .collect();
    assert!(users.is_empty(), "modules importing pipeline: {users:?}");
}

#[test]
fn the_scanner_reads_rust_as_rust() {
    let code =
        blank("let s = \"{ fn x() {\"; // fn y() {\nlet c = '{'; fn z<'a>(x: &'a str) { }\n");
    assert_eq!(code.matches('{').count(), 1);
    assert!(code.contains("fn z<'a>"));
    assert_eq!(code.lines().count(), 2);
    let s = Source {
        rel: "src/x.rs".into(),
        code: blank("fn a() {\n    1;\n}\n#[cfg(test)]\nmod tests {\n    fn b() {\n    }\n}\n"),
        test_ranges: vec![],
    };
    let s = Source {
        test_ranges: cfg_test_ranges(&s.code),
        ..s
    };
    assert_eq!(s.test_ranges, vec![(3, 7)]);
    assert_eq!(functions(&s), vec![("a".to_string(), 1, 3)]);
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let edges = |list: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in list {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    assert_eq!(
        find_cycle(&edges(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_cycle(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

/// Text files of the repository that may cite the method document: code, scripts, docs, jobs.
fn documents() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "src", "tests", "scripts", "docs", "docker", "jobs", "examples",
    ] {
        walk_text(&root.join(dir), &mut files);
    }
    for f in [
        "README.md",
        "BENCHMARKS.md",
        "Makefile",
        "build.rs",
        "Cargo.toml",
    ] {
        files.push(root.join(f));
    }
    files.sort();
    files
        .into_iter()
        .filter(|p| !p.ends_with("tests/architecture.rs"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            Some((rel, text))
        })
        .collect()
}

fn walk_text(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk_text(&p, out);
        } else if p.extension().is_some_and(|x| {
            ["rs", "md", "py", "sh", "yaml", "yml", "toml", "txt"]
                .contains(&x.to_str().unwrap_or(""))
        }) || p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("Dockerfile"))
        {
            out.push(p);
        }
    }
}

/// Every `§N` / `§N.M` in `text`.
fn section_refs(text: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for (i, _) in text.match_indices('§') {
        let rest = &text[i + '§'.len_utf8()..];
        let mut end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if end == 0 {
            refs.push(String::new());
            continue;
        }
        let tail = &rest[end..];
        if let Some(sub) = tail.strip_prefix('.') {
            let n = sub.find(|c: char| !c.is_ascii_digit()).unwrap_or(sub.len());
            if n > 0 {
                end += 1 + n;
            }
        }
        refs.push(rest[..end].to_string());
    }
    refs
}

#[test]
fn every_section_reference_has_its_target_in_the_method_document() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let method = std::fs::read_to_string(root.join("docs/method.md")).unwrap();
    let targets: BTreeSet<String> = method
        .lines()
        .filter(|l| l.starts_with('#'))
        .flat_map(section_refs)
        .collect();
    assert!(
        targets.contains("4") && targets.contains("14.1"),
        "{targets:?}"
    );
    let mut missing = Vec::new();
    for (rel, text) in documents() {
        for r in section_refs(&text) {
            if !targets.contains(&r) {
                missing.push(format!("{rel}: §{r}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "references without a heading in docs/method.md: {missing:?}"
    );
}

#[test]
fn nothing_points_outside_the_repository() {
    const OUTSIDE: [&str; 5] = [
        "../shared",
        "shared/spec",
        "method spec",
        "/work/",
        "specification's §",
    ];
    let mut found = Vec::new();
    for (rel, text) in documents() {
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            if let Some(p) = OUTSIDE.iter().find(|p| lower.contains(*p)) {
                found.push(format!("{rel}:{}: {p}", n + 1));
            }
        }
    }
    assert!(found.is_empty(), "paths outside the repository: {found:?}");
}

#[test]
fn section_references_are_read_whole() {
    assert_eq!(
        section_refs("see §4, §14.1 and §9.2. Also § alone and §2x"),
        ["4", "14.1", "9.2", "", "2"]
    );
}

/// The README's and BENCHMARKS' test names (`a::tests::f`, `runner::f`) name tests that exist, so
/// a moved or renamed test cannot leave its evidence pointing nowhere.
#[test]
fn the_documents_name_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut missing = Vec::new();
    for doc in ["README.md", "BENCHMARKS.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for quoted in text.split('`').skip(1).step_by(2) {
            let path = quoted.trim_end_matches('*').trim_end_matches('_');
            let well_formed = path.contains("::")
                && path
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':');
            if !well_formed {
                continue;
            }
            match common::test_exists(path) {
                Some(true) => checked += 1,
                Some(false) => missing.push(format!("{doc}: `{quoted}`")),
                None => {}
            }
        }
    }
    assert!(
        missing.is_empty(),
        "tests named but not found: {missing:#?}"
    );
    assert!(checked >= 20, "only {checked} test names found");
}
