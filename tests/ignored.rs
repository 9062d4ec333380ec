//! Every `#[ignore]`d test says why. Those that `make test` runs (they need root or Chromium, which
//! CI has; their reason ends in "(make test runs it)") are named on the Makefile's `--ignored` line,
//! with their test target, and every name there is such a test: a test renamed or added without
//! the Makefile would otherwise never run. Likewise every name filter of the scalar-kernel pass
//! names a test that exists.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `(function, attribute)` of every `#[ignore…]` test in `text`.
fn ignored_tests(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let attr = l.trim();
        if !attr.starts_with("#[ignore") {
            continue;
        }
        let name = lines[i + 1..]
            .iter()
            .find_map(|l| {
                let rest = l.trim().strip_prefix("fn ")?;
                Some(rest.split('(').next().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("no test after {attr}"));
        found.push((name, attr.to_string()));
    }
    found
}

#[test]
fn every_ignored_test_is_run_by_name_in_make_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    let (mut ignored, mut targets) = (BTreeSet::new(), Vec::new());
    for f in files {
        for (name, attr) in ignored_tests(&std::fs::read_to_string(&f).unwrap()) {
            assert!(
                attr.starts_with("#[ignore = \""),
                "{name} ({}): an ignored test says why: {attr}",
                f.display()
            );
            if !attr.ends_with("(make test runs it)\"]") {
                continue;
            }
            let target = match f.strip_prefix(root.join("tests")) {
                Ok(rel) if rel.parent() == Some(Path::new("")) => {
                    format!("--test {}", rel.file_stem().unwrap().to_string_lossy())
                }
                _ => "--lib".to_string(),
            };
            targets.push((name.clone(), target));
            ignored.insert(name);
        }
    }
    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
    let line = makefile
        .lines()
        .find(|l| l.contains("-- --ignored"))
        .expect("the Makefile runs the ignored tests");
    let builds = format!("{} ", line.split(" -- ").next().unwrap());
    for (name, target) in targets {
        assert!(
            builds.contains(&format!("{target} ")),
            "the Makefile's --ignored line does not build {name}'s target ({target})"
        );
    }
    let named: BTreeSet<String> = line
        .split(" -- ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .filter(|w| !w.starts_with('-'))
        .map(String::from)
        .collect();
    assert!(!ignored.is_empty());
    assert_eq!(
        ignored, named,
        "the ignored tests and the names on the Makefile's --ignored line differ"
    );
}

#[test]
fn the_scan_finds_an_ignored_test_and_its_reason() {
    let text = "#[test]\n#[ignore = \"needs root\"]\nfn mounts() {}\n#[test]\nfn plain() {}\n";
    assert_eq!(
        ignored_tests(text),
        [(
            "mounts".to_string(),
            "#[ignore = \"needs root\"]".to_string()
        )]
    );
}

/// The scalar-kernel pass re-runs tests by name filter; a filter that matches no test (after a
/// rename or a move) would pass without running anything.
#[test]
fn every_scalar_kernel_filter_names_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
    let lines: Vec<&str> = makefile
        .lines()
        .filter(|l| l.contains("ATEN_CPU_CAPABILITY=default") && l.contains(" -- "))
        .collect();
    assert!(lines.len() >= 2, "the scalar-kernel pass is gone");
    let mut checked = 0;
    for line in lines {
        let (build, names) = line.split_once(" -- ").unwrap();
        for filter in names.split_whitespace().filter(|w| !w.starts_with('-')) {
            let path = match build.split_once("--test ") {
                Some((_, t)) => format!("{}::{filter}", t.trim()),
                None => filter.to_string(),
            };
            assert_eq!(
                common::test_exists(&path),
                Some(true),
                "`{filter}` on the Makefile's scalar-kernel line names no test"
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} filters");
}
