//! The manifest over a run's life, through the real binary: what a kill during the final write of
//! `manifest.json` leaves is resumed without losing an item, and a manifest cut short (as a copy
//! that did not finish would leave it) is never trusted for a shorter list.

mod common;
use common::{code, run_job, stderr, tiny_model, verify};
use maskomaly::provenance::manifest::{journal_path, Manifest, RunStatus};
use std::path::{Path, PathBuf};

const N: usize = 5;

fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let (input, output) = (dir.join("in"), dir.join("out"));
    for i in 0..N {
        let img = maskomaly::demo::road_scene(96 + 8 * i, 64, i as u32);
        maskomaly::demo::save_rgb(&img, &input.join(format!("s{}/f{i}.png", i % 2))).unwrap();
    }
    let job = dir.join("job.yaml");
    std::fs::write(
        &job,
        format!(
            "name: t\ndataset: {{kind: folder, root: {}}}\n\
             checkpoint: {{format: torchscript, path: {}}}\n\
             preprocess: {{min_size: 64, max_size: 128}}\n\
             output: {{root: {}}}\nruntime: {{device: cpu}}\n",
            input.display(),
            tiny_model().display(),
            output.display()
        ),
    )
    .unwrap();
    (job, output)
}

#[test]
fn a_kill_during_the_final_manifest_write_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (job, out) = setup(d.path());
    let o = run_job(&job, &["--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let path = out.join("manifest.json");
    let done = Manifest::read(&path).unwrap();
    assert_eq!(done.counts.written, N);
    // The manifest's bytes written over the run: the starting manifest, a journal line per item,
    // the final manifest; no rewrite per item or per second.
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let final_bytes = std::fs::metadata(&path).unwrap().len();
    let written = summary["manifest_bytes_written"].as_u64().unwrap();
    assert!(
        written > final_bytes && written < 3 * final_bytes,
        "{written} bytes written for a manifest of {final_bytes}"
    );

    // What a kill during the final write leaves: the manifest the run started with (no items yet),
    // every record in the journal, and part of the new manifest under its temporary name.
    let whole = std::fs::read(&path).unwrap();
    let mut started = done.clone();
    started.items.clear();
    started.status = RunStatus::Running;
    started.finished = None;
    started.write(&path).unwrap();
    let lines: String = done
        .items
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(journal_path(&path), lines).unwrap();
    let temp = out.join(".manifest.json.tmp-4000000");
    std::fs::write(&temp, &whole[..whole.len() / 2]).unwrap();

    let o = run_job(&job, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let m = Manifest::read(&path).unwrap();
    assert_eq!(m.status, RunStatus::Complete);
    assert_eq!(
        (m.counts.skipped, m.counts.written, m.items.len()),
        (N, 0, N),
        "every item recorded before the kill is kept"
    );
    assert!(!temp.exists(), "the half-written manifest is removed");
    assert!(!journal_path(&path).exists());
    assert_eq!(code(&verify(&out)), 0);

    // A manifest cut short under its own name is not read as a shorter list: every item is redone.
    let whole = std::fs::read(&path).unwrap();
    let items_at = whole.windows(9).position(|w| w == b"\"items\": ").unwrap();
    let cut = items_at + (whole.len() - items_at) * 2 / 3;
    std::fs::write(&path, &whole[..cut]).unwrap();
    let o = run_job(&job, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be read"), "{}", stderr(&o));
    let m = Manifest::read(&path).unwrap();
    assert_eq!((m.counts.written, m.counts.skipped), (N, 0));
    assert_eq!(code(&verify(&out)), 0);
}
