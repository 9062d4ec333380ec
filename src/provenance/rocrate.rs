//! RO-Crate provenance: `ro-crate-metadata.json` next to `manifest.json`, describing the run as an
//! RO-Crate 1.1 "Process Run Crate" (<https://w3id.org/ro/wfrun/process/0.5>).
//!
//! The crate is a pure function of the manifest: the run is a `CreateAction` whose `instrument` is
//! the program (a `SoftwareApplication` with its version), whose `object` lists the input images,
//! the resolved job and the checkpoint, and whose `result` lists the output files with their
//! SHA-256. Outputs live inside the crate (relative ids); inputs and the checkpoint live outside it
//! and get absolute `file://` ids. `manifest.json` is part of the crate and carries everything the
//! crate summarises (timings, numerics, libtorch).

use super::manifest::{ItemRecord, Manifest, RunStatus};
use crate::exit::{Diagnose, ExitCode};
use crate::output::pathtext;
use serde_json::{json, Map, Value};
use std::path::Path;

pub const FILE_NAME: &str = "ro-crate-metadata.json";
const ROCRATE_SPEC: &str = "https://w3id.org/ro/crate/1.1";
const PROCESS_PROFILE: &str = "https://w3id.org/ro/wfrun/process/0.5";

#[derive(Debug, thiserror::Error)]
pub enum RoCrateError {
    #[error("the manifest's job cannot be read")]
    Job(#[source] serde_json::Error),
    #[error("cannot write {path}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Diagnose for RoCrateError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RoCrateError::Job(_) => ExitCode::Data,
            RoCrateError::Write { .. } => ExitCode::Io,
        }
    }
}

/// Percent-encodes what may not appear raw in a URI path (RFC 3986 `pchar` plus `/`).
fn uri_path(p: &str) -> String {
    let mut s = String::with_capacity(p.len());
    for b in p.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'/'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b':'
            | b'@' => s.push(b as char),
            _ => s.push_str(&format!("%{b:02X}")),
        }
    }
    s
}

/// `file://` id for a path outside the crate; relative paths are resolved against `base`.
fn file_id(base: &Path, rel: &str) -> String {
    let p = base.join(rel);
    format!("file://{}", uri_path(&p.to_string_lossy()))
}

fn encoding_format(path: &str) -> Option<&'static str> {
    let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "hdf5" | "h5" => "application/x-hdf5",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "npy" => "application/x-npy",
        "json" => "application/json",
        _ => return None,
    })
}

fn file_entity(id: String, name: &str, sha256: Option<&str>) -> Value {
    let mut e = Map::new();
    e.insert("@id".into(), json!(id));
    e.insert("@type".into(), json!("File"));
    e.insert("name".into(), json!(name));
    if let Some(f) = encoding_format(name) {
        e.insert("encodingFormat".into(), json!(f));
    }
    if let Some(h) = sha256 {
        e.insert("sha256".into(), json!(h));
    }
    Value::Object(e)
}

/// Builds the crate for a run from its manifest.
pub fn from_manifest(m: &Manifest) -> Result<Value, RoCrateError> {
    let job = m.job().map_err(RoCrateError::Job)?;
    let run_id = &m.run_id;
    let program_id = format!("#program-{}-{}", m.program.name, m.program.version);
    let (mut objects, results, mut entities) = files(&m.items, &job.dataset.root);

    // The resolved job is a parameter of the run; its text is the manifest's `job`.
    objects.insert(0, json!({"@id": "#job"}));
    entities.push(job_entity(m));
    let ck = &m.checkpoint;
    let ck_path = ck.path.to_string_lossy();
    let ck_id = file_id(Path::new("/"), &ck_path);
    let mut ck_entity = file_entity(ck_id.clone(), &ck_path, Some(&ck.sha256));
    ck_entity["description"] = json!(format!("model checkpoint ({})", ck.format));
    objects.insert(1, json!({"@id": ck_id}));
    entities.push(ck_entity);

    let mut action = json!({
        "@id": format!("#run-{run_id}"),
        "@type": "CreateAction",
        "name": format!("{} run {run_id}", m.program.name),
        "instrument": {"@id": program_id},
        "object": objects,
        "result": results,
        "startTime": m.started,
        "actionStatus": match m.status {
            RunStatus::Complete => "http://schema.org/CompletedActionStatus",
            RunStatus::Running => "http://schema.org/ActiveActionStatus",
            _ => "http://schema.org/FailedActionStatus",
        },
        "description": m.command_line.join(" "),
    });
    if let Some(end) = &m.finished {
        action["endTime"] = json!(end);
    }
    if m.status != RunStatus::Complete {
        action["error"] = json!(format!("run status: {}", m.status.as_str()));
    }

    let mut has_part: Vec<Value> = vec![json!({"@id": "manifest.json"})];
    has_part.extend(results);
    let root = json!({
        "@id": "./",
        "@type": "Dataset",
        "name": format!("{} outputs ({run_id})", job.name),
        "description": "Anomaly maps written by a Maskomaly batch run, with the run's provenance.",
        "conformsTo": {"@id": PROCESS_PROFILE},
        "hasPart": has_part,
        "mentions": {"@id": format!("#run-{run_id}")},
        "datePublished": m.finished.as_ref().unwrap_or(&m.started),
    });
    let mut graph = vec![
        json!({
            "@id": FILE_NAME,
            "@type": "CreativeWork",
            "conformsTo": {"@id": ROCRATE_SPEC},
            "about": {"@id": "./"},
        }),
        root,
        json!({
            "@id": PROCESS_PROFILE,
            "@type": "CreativeWork",
            "name": "Process Run Crate",
            "version": "0.5",
        }),
        action,
    ];
    graph.extend(software(m, &program_id));
    graph.push(json!({
        "@id": "manifest.json",
        "@type": "File",
        "name": "manifest.json",
        "encodingFormat": "application/json",
        "description": "Run manifest (maskomaly-manifest/1): job, numerics, per-item timings and hashes.",
    }));
    graph.extend(entities);
    Ok(json!({"@context": "https://w3id.org/ro/crate/1.1/context", "@graph": graph}))
}

/// The inputs (`object`, outside the crate under `input_root`), the outputs (`result`, inside it,
/// each once) and their entities, in item order.
fn files(items: &[ItemRecord], input_root: &Path) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let (mut objects, mut results, mut entities) = (vec![], vec![], vec![]);
    let mut seen_out = std::collections::BTreeSet::new();
    for it in items {
        let input = pathtext::encode(&it.input).0;
        let id = file_id(input_root, &input);
        objects.push(json!({"@id": id}));
        entities.push(file_entity(id, &input, it.input_sha256.as_deref()));
        for o in &it.outputs {
            let p = pathtext::encode(&o.path).0;
            if seen_out.insert(p.clone()) {
                let id = uri_path(&p);
                results.push(json!({"@id": id}));
                entities.push(file_entity(id, &p, Some(&o.sha256)));
            }
        }
    }
    (objects, results, entities)
}

/// The resolved job as an entity; `url` is the job file named on the command line, if any.
fn job_entity(m: &Manifest) -> Value {
    let mut e = json!({
        "@id": "#job",
        "@type": "CreativeWork",
        "name": "job (resolved, every key with its value)",
        "encodingFormat": "application/json",
        "text": serde_json::to_string_pretty(&m.job).unwrap_or_default(),
        "isPartOf": {"@id": "manifest.json"},
    });
    if let Some(path) = job_file_argument(&m.command_line) {
        e["url"] = json!(path);
    }
    e
}

/// The program, and libtorch: what the numbers depend on most after the program itself.
fn software(m: &Manifest, program_id: &str) -> [Value; 2] {
    let p = &m.program;
    let mut program = json!({
        "@id": program_id,
        "@type": "SoftwareApplication",
        "name": p.name,
        "version": p.version,
        "softwareVersion": p.version,
        "softwareRequirements": {"@id": "#libtorch"},
    });
    if let Some(c) = &p.git_commit {
        program["identifier"] = json!(format!("git:{c}"));
    }
    let libtorch = json!({
        "@id": "#libtorch",
        "@type": "SoftwareApplication",
        "name": "libtorch",
        "version": m.libtorch,
    });
    [program, libtorch]
}

/// The value of `--job FILE` / `--job=FILE` on the recorded command line, if any.
fn job_file_argument(cl: &[String]) -> Option<String> {
    cl.iter().enumerate().find_map(|(i, w)| {
        if w == "--job" {
            cl.get(i + 1).cloned()
        } else {
            w.strip_prefix("--job=").map(str::to_string)
        }
    })
}

/// Writes `<output>/ro-crate-metadata.json` for a manifest (atomically, like every output).
pub fn write(output: &Path, manifest: &Manifest) -> Result<(), RoCrateError> {
    let crate_json = from_manifest(manifest)?;
    let path = output.join(FILE_NAME);
    let text = serde_json::to_vec_pretty(&crate_json).expect("JSON values always serialise");
    crate::output::write_bytes_atomic(&path, &text)
        .map_err(|source| RoCrateError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let t = json!({"decode": 1.0, "infer": 2.0, "score": 3.0, "write": 4.0});
        serde_json::from_value(json!({
            "format": "maskomaly-manifest/1",
            "run_id": "r1",
            "program": {"name": "maskomaly", "version": "0.1.0", "git_commit": "abc123"},
            "command_line": ["maskomaly", "run", "--job", "jobs/x.yaml"],
            "job": {"name": "demo", "dataset": {"kind": "folder", "root": "/data in"}},
            "libtorch": "2.11.0",
            "device": "cpu",
            "model": "m",
            "numerics": {"precision": "fp32", "tf32": false, "deterministic": true},
            "checkpoint": {"path": "/models/model.pt", "format": "torchscript", "sha256": "ab"},
            "shard": null,
            "started": "2026-01-01T00:00:00Z",
            "finished": "2026-01-01T00:01:00Z",
            "status": "complete",
            "counts": {"total": 2, "written": 1, "failed": 1, "skipped": 0},
            "items": [
                {"input": "a/x 1.png", "input_sha256": "11", "stem": "a/x 1", "status": "written", "error": null,
                 "outputs": [{"path": "a/x 1.hdf5", "sha256": "22"}, {"path": "a/x 1.png", "sha256": "33"}],
                 "timings_ms": t},
                {"input": "b.jpg", "input_sha256": "44", "stem": "b", "status": "failed", "error": "bad", "outputs": [],
                 "timings_ms": t}
            ]
        }))
        .unwrap()
    }

    fn entity<'a>(c: &'a Value, id: &str) -> &'a Value {
        c["@graph"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["@id"] == id)
            .unwrap_or_else(|| panic!("no entity {id}"))
    }

    #[test]
    fn crate_describes_the_run() {
        let c = from_manifest(&manifest()).unwrap();
        assert_eq!(c["@context"], "https://w3id.org/ro/crate/1.1/context");
        let meta = entity(&c, FILE_NAME);
        assert_eq!(meta["conformsTo"]["@id"], ROCRATE_SPEC);
        let root = entity(&c, "./");
        assert_eq!(root["conformsTo"]["@id"], PROCESS_PROFILE);
        assert_eq!(root["mentions"]["@id"], "#run-r1");

        let action = entity(&c, "#run-r1");
        assert_eq!(action["@type"], "CreateAction");
        assert_eq!(action["startTime"], "2026-01-01T00:00:00Z");
        assert_eq!(action["endTime"], "2026-01-01T00:01:00Z");
        assert_eq!(
            action["actionStatus"],
            "http://schema.org/CompletedActionStatus"
        );

        let program = entity(&c, action["instrument"]["@id"].as_str().unwrap());
        assert_eq!(program["@type"], "SoftwareApplication");
        assert_eq!(program["version"], "0.1.0");
        assert_eq!(program["identifier"], "git:abc123");
        assert_eq!(entity(&c, "#libtorch")["version"], "2.11.0");

        let objects: Vec<&str> = action["object"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["@id"].as_str().unwrap())
            .collect();
        assert_eq!(
            objects,
            [
                "#job",
                "file:///models/model.pt",
                "file:///data%20in/a/x%201.png",
                "file:///data%20in/b.jpg"
            ]
        );
        let results: Vec<&str> = action["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["@id"].as_str().unwrap())
            .collect();
        assert_eq!(results, ["a/x%201.hdf5", "a/x%201.png"]);

        let out = entity(&c, "a/x%201.hdf5");
        assert_eq!(out["sha256"], "22");
        assert_eq!(out["encodingFormat"], "application/x-hdf5");
        assert_eq!(entity(&c, "file:///data%20in/b.jpg")["sha256"], "44");
        assert_eq!(entity(&c, "file:///models/model.pt")["sha256"], "ab");

        let job = entity(&c, "#job");
        assert_eq!(job["url"], "jobs/x.yaml");
        let text: Value = serde_json::from_str(job["text"].as_str().unwrap()).unwrap();
        assert_eq!(text["name"], "demo");

        // Every reference resolves to an entity of the graph.
        let ids: std::collections::HashSet<&str> = c["@graph"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["@id"].as_str().unwrap())
            .collect();
        for r in root["hasPart"]
            .as_array()
            .unwrap()
            .iter()
            .chain(action["object"].as_array().unwrap())
        {
            assert!(ids.contains(r["@id"].as_str().unwrap()), "dangling {r}");
        }
    }

    #[test]
    fn unfinished_run_is_not_reported_complete() {
        let mut m = manifest();
        m.status = RunStatus::Interrupted;
        m.finished = None;
        let c = from_manifest(&m).unwrap();
        let action = entity(&c, "#run-r1");
        assert_eq!(
            action["actionStatus"],
            "http://schema.org/FailedActionStatus"
        );
        assert!(action.get("endTime").is_none());
        assert_eq!(entity(&c, "./")["datePublished"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn a_job_that_cannot_be_read_is_named() {
        let mut m = manifest();
        m.job = json!({"no such key": 1});
        let e = from_manifest(&m).unwrap_err();
        assert!(e.to_string().contains("job"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn write_puts_the_file_next_to_the_manifest() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), &manifest()).unwrap();
        let back: Value =
            serde_json::from_slice(&std::fs::read(d.path().join(FILE_NAME)).unwrap()).unwrap();
        assert_eq!(back, from_manifest(&manifest()).unwrap());
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
    }
}
