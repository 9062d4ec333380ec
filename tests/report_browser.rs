//! The evaluation report in a real browser. `maskomaly eval` runs on a small synthetic evaluation
//! (Fishyscapes layout: demo road scenes, their labels, score maps with misses and false positives,
//! and a manifest; one score, or three in the multi-score layout), then headless Chromium (Debian's
//! `chromium`, from `scripts/ci-deps.sh`):
//!
//! * renders `report.html` at 1280 px: the screenshot must not be blank and must show the gallery's
//!   score heat maps; Chromium's network log must hold no request made by the page;
//! * renders a copy of the page with a probe script appended: every image must have loaded, the page
//!   must not be wider than 1280 px, no script may fail, and a click on the AP column must sort it;
//! * and every `src` / `href` / `url()` of the page must be an anchor of the page or a file inside the
//!   eval folder;
//! * the page of three scores, at the eval folder's root, must name every score in its metrics table
//!   and in its PR and ROC plots (each in the score's colour), show them side by side in the
//!   gallery, make no request, not be blank and not overflow 1280 px.
//!
//! The page checks that need no browser run with every `cargo test`; the rendering tests are
//! `#[ignore]`d (they need Chromium) and `make test` runs them, where a missing Chromium fails.
//! `MASKOMALY_REPORT_SCREENSHOT=FILE` keeps a copy of the screenshot.

#[path = "common/browser.rs"]
mod browser;

use maskomaly::eval::html;
use maskomaly::provenance::manifest::{
    CheckpointInfo, Counts, Manifest, Numerics, Program, RunStatus, FORMAT,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 3400;

/// Pseudo-random in [0, 1) from a pixel position and a frame (reproducible noise).
fn noise(x: usize, y: usize, f: usize) -> f32 {
    let mut h = (x as u32).wrapping_mul(0x9E37_79B1)
        ^ (y as u32).wrapping_mul(0x85EB_CA77)
        ^ (f as u32).wrapping_mul(0xC2B2_AE3D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    (h & 0xFFFF) as f32 / 65536.0
}

/// Six frames of the fs_static layout with `.npy` score maps beside a manifest. Frame 1 misses
/// most of its obstacle; frames 2 and 4 have a bright false-positive patch on the road; frame 5
/// has no anomaly at all. With `scores`, each score's maps go to `preds/<score>/` (the multi-score
/// layout), each score scaled and disturbed differently.
fn synthetic_evaluation(dir: &Path, scores: &[&str]) -> (PathBuf, PathBuf) {
    let root = dir.join("fs_static");
    let preds = dir.join("preds");
    std::fs::create_dir_all(root.join("labels")).unwrap();
    std::fs::create_dir_all(&preds).unwrap();
    let layouts: Vec<(PathBuf, usize)> = if scores.is_empty() {
        vec![(preds.clone(), 0)]
    } else {
        scores
            .iter()
            .enumerate()
            .map(|(i, s)| (preds.join(s), i))
            .collect()
    };
    for (folder, _) in &layouts {
        std::fs::create_dir_all(folder).unwrap();
    }
    let (w, h) = (240usize, 144usize);
    for f in 0..6usize {
        let img = maskomaly::demo::road_scene(w, h, f as u32);
        maskomaly::demo::save_rgb(&img, &root.join(format!("images/frame{f}.png"))).unwrap();
        let mut labels = maskomaly::demo::road_scene_labels(w, h, f as u32);
        if f == 5 {
            for l in labels.iter_mut().filter(|l| **l == 1) {
                *l = 0;
            }
        }
        image::GrayImage::from_raw(w as u32, h as u32, labels.clone())
            .unwrap()
            .save(root.join(format!("labels/frame{f}.png")))
            .unwrap();
        for (folder, k) in &layouts {
            let scores: Vec<f32> = (0..w * h)
                .map(|i| {
                    let (x, y) = (i % w, i / w);
                    let n = noise(x, y, f + 7 * k);
                    // Score k misses the obstacle of frame k + 1 and sees a patch on frame 2 + k.
                    let patch = (f == 2 + k || f == 4) && (x / 40 == 4) && (y * 10 / h >= 7);
                    let v = match labels[i] {
                        1 if f == 1 + k && x % 3 != 0 => 0.2 * n,
                        1 => 0.55 + 0.45 * n,
                        _ if patch => 0.6 + 0.4 * n,
                        _ => 0.45 * n * n,
                    };
                    // The second score lives outside [0, 1], as RbA does.
                    if *k == 1 {
                        4.0 * v - 3.0
                    } else {
                        v
                    }
                })
                .collect();
            maskomaly::output::npy::write_f32(
                &folder.join(format!("frame{f}.npy")),
                &scores,
                &[h, w],
            )
            .unwrap();
        }
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        run_id: "2026-01-01T00:00:00Z-1".into(),
        program: Program {
            name: "maskomaly".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_commit: None,
        },
        command_line: vec!["maskomaly".into(), "run".into()],
        job: serde_json::json!({}),
        libtorch: "2.11.0".into(),
        device: "cpu".into(),
        model: "torchscript synthetic.pt".into(),
        numerics: Numerics {
            precision: "fp32".into(),
            tf32: false,
            deterministic: true,
        },
        checkpoint: CheckpointInfo {
            path: "/models/synthetic.pt".into(),
            format: "torchscript".into(),
            sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
        },
        shard: None,
        started: "2026-01-01T00:00:00Z".into(),
        finished: Some("2026-01-01T00:00:05Z".into()),
        status: RunStatus::Complete,
        counts: Counts {
            total: 6,
            written: 6,
            ..Default::default()
        },
        items: vec![],
    };
    manifest.write(&preds.join("manifest.json")).unwrap();
    let job = dir.join("job.yaml");
    let method = if scores.is_empty() {
        String::new()
    } else {
        format!("method: {{scores: [{}]}}\n", scores.join(", "))
    };
    std::fs::write(
        &job,
        format!(
            "name: browser\ndataset: {{kind: fs_static, root: {}}}\n{method}",
            root.display()
        ),
    )
    .unwrap();
    (job, preds)
}

/// Every reference of the page is an anchor of the page or a file inside `dir`.
fn check_references(page: &str, dir: &Path) {
    // The SVG namespace is a name, not a reference: nothing else may name a scheme.
    let text = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for scheme in [
        "http:",
        "https:",
        "ftp:",
        "//fonts.",
        "@import",
        "@font-face",
        "<link",
    ] {
        assert!(!text.contains(scheme), "the page holds {scheme:?}");
    }
    let refs = html::references(page);
    assert!(
        refs.iter().any(|r| r.starts_with("report/")),
        "no gallery picture referenced"
    );
    for r in refs {
        if let Some(id) = r.strip_prefix('#') {
            assert!(
                page.contains(&format!("id=\"{id}\"")),
                "anchor {r} has no target"
            );
            continue;
        }
        assert!(
            !r.contains(':') && !r.starts_with('/'),
            "{r} is not a relative path"
        );
        assert!(
            !r.split('/').any(|c| c == ".."),
            "{r} leaves the eval folder"
        );
        assert!(dir.join(&r).is_file(), "{r} does not exist beside the page");
    }
}

/// Network requests (anything but `file:`, which the network log does not record) made by a page
/// opened from a file: their isolation key is `file://`; Chromium's own background requests are
/// keyed otherwise.
fn page_requests(net_log: &Path) -> Vec<String> {
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(net_log).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", net_log.display()));
    assert!(
        log["events"].as_array().is_some_and(|e| !e.is_empty()),
        "empty network log"
    );
    let mut sources = std::collections::HashSet::new();
    let mut urls: std::collections::HashMap<u64, String> = Default::default();
    for e in log["events"].as_array().into_iter().flatten() {
        let id = e["source"]["id"].as_u64().unwrap_or(u64::MAX);
        let p = &e["params"];
        if let Some(u) = p["url"].as_str() {
            urls.entry(id).or_insert_with(|| u.to_string());
        }
        if p["network_isolation_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("file://"))
        {
            sources.insert(id);
        }
    }
    sources
        .into_iter()
        .filter_map(|id| urls.remove(&id))
        .collect()
}

/// Chromium, or a failure saying how to get it.
fn chromium() -> PathBuf {
    browser::find_chromium()
        .expect("chromium is not installed (scripts/ci-deps.sh installs Debian's chromium)")
}

/// Renders `page` in headless Chromium, offline: no load errors and no network request. Returns
/// the screenshot (`WIDTH` × `HEIGHT`), copied to the file `keep_var` names when it is set.
fn render_offline(chromium: &Path, d: &Path, page: &Path, keep_var: &str) -> image::RgbImage {
    let shot = d.join("shot.png");
    let net = d.join("net.json");
    let out = browser::screenshot(
        chromium,
        page,
        &shot,
        (WIDTH, HEIGHT),
        Duration::from_secs(120),
        &[format!("--log-net-log={}", net.display())],
    )
    .unwrap();
    let errors = browser::load_errors(&out.log);
    assert!(errors.is_empty(), "browser errors:\n{}", errors.join("\n"));
    let requests = page_requests(&net);
    assert!(
        requests.is_empty(),
        "the page made network requests: {requests:?}"
    );
    if let Ok(keep) = std::env::var(keep_var) {
        std::fs::copy(&shot, keep).unwrap();
    }
    let img = image::open(&shot).unwrap().into_rgb8();
    assert_eq!(img.dimensions(), (WIDTH, HEIGHT));
    img
}

/// Loads a copy of `page` with `script` appended, beside the page in `eval` so that relative
/// references resolve the same way; returns the browser's log, which holds the script's
/// `PROBE ...` console lines. Fails on any load error.
fn probe(chromium: &Path, d: &Path, eval: &Path, page: &str, script: &str) -> String {
    let probe_path = eval.join("report.probe.html");
    std::fs::write(
        &probe_path,
        page.replace("</body>", &format!("{script}</body>")),
    )
    .unwrap();
    let out = browser::screenshot(
        chromium,
        &probe_path,
        &d.join("probe.png"),
        (WIDTH, 900),
        Duration::from_secs(120),
        &[],
    )
    .unwrap();
    let errors = browser::load_errors(&out.log);
    assert!(errors.is_empty(), "browser errors:\n{}", errors.join("\n"));
    out.log
}

/// The message of the probe's `PROBE what ...` console line. Console lines read
/// `[...:INFO:CONSOLE:N] "message", source: URL (line)`.
fn probe_line(log: &str, what: &str) -> String {
    let tag = format!("\"PROBE {what} ");
    log.lines()
        .find_map(|l| l.split_once(&tag).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("the probe did not report {what}:\n{log}"))
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Appended to a copy of the page: reports image loads, page width, and whether sorting works.
const PROBE: &str = r#"<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  console.log("PROBE images " + imgs.length + " broken " + broken.map(function (i) { return i.getAttribute("src"); }).join(","));
  console.log("PROBE width " + document.documentElement.scrollWidth + " of " + window.innerWidth);
  var t = document.querySelector("table.frames");
  var th = t.querySelectorAll("thead th")[5];
  th.click();
  var v = Array.prototype.slice.call(t.tBodies[0].rows).map(function (r) { return r.cells[5].dataset.v; });
  var nums = v.filter(function (x) { return x !== ""; }).map(parseFloat);
  var sorted = nums.every(function (x, i) { return i === 0 || nums[i - 1] <= x; });
  console.log("PROBE sort " + (th.textContent === "AP" && sorted && nums.length > 1 ? "ok" : "bad " + v.join(",")));
});
</script>"#;

/// `eval` on the one-score evaluation in `d`; checks the page's text and references, and returns
/// the eval folder, the page's path and the page.
fn single_score_page(d: &Path) -> (PathBuf, PathBuf, String) {
    let (job, preds) = synthetic_evaluation(d, &[]);
    let eval = preds.join("eval");
    let o = Command::new(env!("CARGO_BIN_EXE_maskomaly"))
        .args(["-q", "eval", "--job"])
        .arg(&job)
        .arg("--predictions")
        .arg(&preds)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page_path = eval.join("report.html");
    let page = std::fs::read_to_string(&page_path).unwrap();
    check_references(&page, &eval);
    for needle in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "fp32",
        "fs_static",
        "Lowest AP",
        "Largest false-positive area",
    ] {
        assert!(page.contains(needle), "{needle} missing from the page");
    }

    (eval, page_path, page)
}

#[test]
fn report_page_references_only_its_folder() {
    let d = tempfile::tempdir().unwrap();
    single_score_page(d.path());
}

#[test]
#[ignore = "needs chromium: renders the page headless (make test runs it)"]
fn report_renders_offline_in_chromium() {
    let d = tempfile::tempdir().unwrap();
    let (eval, page_path, page) = single_score_page(d.path());
    let chromium = chromium();
    let img = render_offline(
        &chromium,
        d.path(),
        &page_path,
        "MASKOMALY_REPORT_SCREENSHOT",
    );
    let bg = *img.get_pixel(WIDTH - 3, HEIGHT - 3);
    let inked = img.pixels().filter(|p| **p != bg).count() as f64 / (WIDTH * HEIGHT) as f64;
    let mut colours = std::collections::HashSet::new();
    for p in img.pixels() {
        colours.insert(p.0);
    }
    // JET's dark blue (the score of inlier pixels) comes only from the heat-map pictures.
    let heat = img
        .pixels()
        .filter(|p| p.0[0] < 40 && p.0[1] < 40 && p.0[2] > 110)
        .count();
    assert!(
        inked > 0.2,
        "screenshot nearly blank ({:.1}% drawn)",
        100.0 * inked
    );
    assert!(colours.len() > 2000, "only {} colours", colours.len());
    assert!(
        heat > 20_000,
        "heat maps not visible ({heat} JET-blue pixels)"
    );

    let log = probe(&chromium, d.path(), &eval, &page, PROBE);
    let line = |what: &str| -> Vec<String> {
        probe_line(&log, what)
            .split(' ')
            .map(str::to_string)
            .collect()
    };
    // "N broken SRC,SRC,...": nothing after "broken".
    let images = line("images");
    assert!(
        images[0].parse::<usize>().unwrap() >= 12,
        "too few images: {images:?}"
    );
    assert_eq!(images[1..], ["broken", ""], "images failed to load");
    // "SCROLL_WIDTH of WINDOW_WIDTH".
    let width: Vec<u32> = line("width")
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        width.len() == 2 && width[0] <= width[1] && width[1] == WIDTH,
        "the page is wider than the window: {width:?}"
    );
    assert_eq!(line("sort")[0], "ok", "sorting by AP failed");
}

/// Appended to a copy of the page of several scores: whether each score is named in the metrics
/// table and in the PR and ROC plots, and the page's width.
const COMPARE_PROBE: &str = r#"<script>
window.addEventListener("load", function () {
  var text = function (sel) { return Array.prototype.map.call(document.querySelectorAll(sel), function (e) { return e.textContent; }); };
  var rows = text("table.metrics tbody th");
  var svgs = document.querySelectorAll(".plots svg");
  ["maskomaly", "rba", "msp"].forEach(function (n) {
    var has = function (list) { return list.some(function (t) { return t.indexOf(n) >= 0; }); };
    console.log("PROBE score-" + n + " table=" + has(rows) + " pr=" + has([svgs[0].textContent]) + " roc=" + has([svgs[1].textContent]) + " gallery=" + has(text("figcaption")) + " frames=" + has(text("table.frames thead th")));
  });
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  console.log("PROBE images " + imgs.length + " broken " + broken.length);
  console.log("PROBE width " + document.documentElement.scrollWidth + " of " + window.innerWidth);
});
</script>"#;

const NAMES: [&str; 3] = ["maskomaly", "rba", "msp"];

/// `eval` on the evaluation of [`NAMES`] in `d`: the page of several scores, at the eval folder's
/// root; checks its references, its links to each score's page and each score's colour in the
/// plots, and returns the eval folder, the page's path and the page.
fn comparison_page(d: &Path) -> (PathBuf, PathBuf, String) {
    let names = NAMES;
    let (job, preds) = synthetic_evaluation(d, &names);
    let eval = preds.join("eval");
    let o = Command::new(env!("CARGO_BIN_EXE_maskomaly"))
        .args(["-q", "eval", "--job"])
        .arg(&job)
        .arg("--predictions")
        .arg(&preds)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page_path = eval.join("report.html");
    let page = std::fs::read_to_string(&page_path)
        .unwrap_or_else(|e| panic!("no report.html at the eval root: {e}"));
    check_references(&page, &eval);
    for name in names {
        assert!(
            page.contains(&format!("href=\"{name}/report.html\"")),
            "no link to {name}'s own page"
        );
        let colour = maskomaly::eval::chart::hex(maskomaly::eval::chart::score_colour(name));
        let svgs: String = page
            .split("<svg")
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
            .join("")
            .to_ascii_lowercase();
        assert!(svgs.contains(&colour), "{name} not drawn in {colour}");
    }

    (eval, page_path, page)
}

#[test]
fn comparison_page_names_every_score() {
    let d = tempfile::tempdir().unwrap();
    comparison_page(d.path());
}

/// The page of a multi-score evaluation in Chromium.
#[test]
#[ignore = "needs chromium: renders the page headless (make test runs it)"]
fn comparison_report_renders_offline_in_chromium() {
    let d = tempfile::tempdir().unwrap();
    let names = NAMES;
    let (eval, page_path, page) = comparison_page(d.path());
    let chromium = chromium();
    let img = render_offline(
        &chromium,
        d.path(),
        &page_path,
        "MASKOMALY_COMPARISON_SCREENSHOT",
    );
    let bg = *img.get_pixel(WIDTH - 3, HEIGHT - 3);
    let inked = img.pixels().filter(|p| **p != bg).count() as f64 / (WIDTH * HEIGHT) as f64;
    assert!(
        inked > 0.2,
        "screenshot nearly blank ({:.1}% drawn)",
        100.0 * inked
    );

    let log = probe(&chromium, d.path(), &eval, &page, COMPARE_PROBE);
    let line = |what: &str| probe_line(&log, what);
    for name in names {
        assert_eq!(
            line(&format!("score-{name}")),
            "table=true pr=true roc=true gallery=true frames=true",
            "{name} is not named everywhere"
        );
    }
    let images: Vec<String> = line("images").split(' ').map(String::from).collect();
    assert!(
        images[0].parse::<usize>().unwrap() >= 2 + 2 * names.len(),
        "too few images: {images:?}"
    );
    assert_eq!(images[1..], ["broken", "0"], "images failed to load");
    let width: Vec<u32> = line("width")
        .split(' ')
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        width.len() == 2 && width[0] <= width[1] && width[1] == WIDTH,
        "the page is wider than the window: {width:?}"
    );
}
