//! RO-Crate provenance: `ro-crate-metadata.json` next to `manifest.json`, describing the run as an
//! RO-Crate 1.1 "Process Run Crate" (<https://w3id.org/ro/wfrun/process/0.5>).
//!
//! The crate is a pure function of the manifest: the run is a `CreateAction` whose `instrument` is
//! the program (a `SoftwareApplication` with its version), whose `object` lists the input images,
//! the resolved job and the checkpoint, and whose `result` lists the output files with their
//! SHA-256. Outputs live inside the crate (relative ids); inputs and the checkpoint live outside it
//! and get absolute `file://` ids. `manifest.json` is part of the crate and carries everything the
//! crate summarises (timings, numerics, libtorch).

use serde_json::{json, Map, Value};
use std::path::Path;

pub const FILE_NAME: &str = "ro-crate-metadata.json";
const ROCRATE_SPEC: &str = "https://w3id.org/ro/crate/1.1";
const PROCESS_PROFILE: &str = "https://w3id.org/ro/wfrun/process/0.5";

#[derive(Debug, thiserror::Error)]
pub enum RoCrateError {
    #[error("manifest has no usable `{0}`")]
    Field(&'static str),
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

fn str_at<'a>(v: &'a Value, ptr: &'static str) -> Result<&'a str, RoCrateError> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .ok_or(RoCrateError::Field(ptr))
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

fn file_entity(id: String, name: &str, sha256: Option<&Value>) -> Value {
    let mut e = Map::new();
    e.insert("@id".into(), json!(id));
    e.insert("@type".into(), json!("File"));
    e.insert("name".into(), json!(name));
    if let Some(f) = encoding_format(name) {
        e.insert("encodingFormat".into(), json!(f));
    }
    if let Some(h) = sha256.filter(|h| h.is_string()) {
        e.insert("sha256".into(), h.clone());
    }
    Value::Object(e)
}

/// Builds the crate for a run from its manifest (the `maskomaly-manifest/1` JSON).
pub fn from_manifest(m: &Value) -> Result<Value, RoCrateError> {
    let run_id = str_at(m, "/run_id")?;
    let prog_name = str_at(m, "/program/name")?;
    let prog_version = str_at(m, "/program/version")?;
    let started = str_at(m, "/started")?;
    let job = m
        .get("job")
        .filter(|j| j.is_object())
        .ok_or(RoCrateError::Field("/job"))?;
    let input_root = job
        .pointer("/dataset/root")
        .and_then(Value::as_str)
        .ok_or(RoCrateError::Field("/job/dataset/root"))?;
    let items = m
        .get("items")
        .and_then(Value::as_array)
        .ok_or(RoCrateError::Field("/items"))?;
    let status = m.get("status").and_then(Value::as_str).unwrap_or("unknown");

    let program_id = format!("#program-{prog_name}-{prog_version}");
    let mut program = json!({
        "@id": program_id,
        "@type": "SoftwareApplication",
        "name": prog_name,
        "version": prog_version,
        "softwareVersion": prog_version,
    });
    if let Some(c) = m.pointer("/program/git_commit").and_then(Value::as_str) {
        program["identifier"] = json!(format!("git:{c}"));
    }
    // libtorch is what the numbers depend on most after the program itself.
    let libtorch = m.get("libtorch").filter(|l| !l.is_null()).map(|l| {
        let mut lt =
            json!({"@id": "#libtorch", "@type": "SoftwareApplication", "name": "libtorch"});
        match l {
            Value::String(s) => lt["version"] = json!(s),
            other => lt["description"] = json!(other.to_string()),
        }
        lt
    });
    if libtorch.is_some() {
        program["softwareRequirements"] = json!({"@id": "#libtorch"});
    }

    let mut graph = vec![json!({
        "@id": FILE_NAME,
        "@type": "CreativeWork",
        "conformsTo": {"@id": ROCRATE_SPEC},
        "about": {"@id": "./"},
    })];

    let mut objects = Vec::new();
    let mut results = Vec::new();
    let mut entities = Vec::new();
    let mut seen_out = std::collections::BTreeSet::new();
    for it in items {
        if let Some(input) = it.get("input").and_then(Value::as_str) {
            let id = file_id(Path::new(input_root), input);
            objects.push(json!({"@id": id}));
            entities.push(file_entity(id, input, it.get("input_sha256")));
        }
        for o in it
            .get("outputs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(p) = o.get("path").and_then(Value::as_str) {
                if seen_out.insert(p.to_string()) {
                    let id = uri_path(p);
                    results.push(json!({"@id": id}));
                    entities.push(file_entity(id, p, o.get("sha256")));
                }
            }
        }
    }

    // The resolved job is a parameter of the run; its text is the manifest's `job`.
    let job_text = serde_json::to_string_pretty(job).unwrap_or_default();
    let mut job_entity = json!({
        "@id": "#job",
        "@type": "CreativeWork",
        "name": "job (resolved, every key with its value)",
        "encodingFormat": "application/json",
        "text": job_text,
        "isPartOf": {"@id": "manifest.json"},
    });
    if let Some(path) = job_file_argument(m) {
        job_entity["url"] = json!(path);
    }
    objects.insert(0, json!({"@id": "#job"}));
    entities.push(job_entity);

    if let Some(ck) = m.get("checkpoint").filter(|c| c.is_object()) {
        if let Some(p) = ck.get("path").and_then(Value::as_str) {
            let id = file_id(Path::new("/"), p);
            let mut e = file_entity(id.clone(), p, ck.get("sha256"));
            if let Some(f) = ck.get("format").and_then(Value::as_str) {
                e["description"] = json!(format!("model checkpoint ({f})"));
            }
            objects.insert(1, json!({"@id": id}));
            entities.push(e);
        }
    }

    let mut action = json!({
        "@id": format!("#run-{run_id}"),
        "@type": "CreateAction",
        "name": format!("{prog_name} run {run_id}"),
        "instrument": {"@id": program_id},
        "object": objects,
        "result": results,
        "startTime": started,
        "actionStatus": match status {
            "complete" => "http://schema.org/CompletedActionStatus",
            "running" => "http://schema.org/ActiveActionStatus",
            _ => "http://schema.org/FailedActionStatus",
        },
    });
    if let Some(end) = m.get("finished").and_then(Value::as_str) {
        action["endTime"] = json!(end);
    }
    if status != "complete" {
        action["error"] = json!(format!("run status: {status}"));
    }
    if let Some(cl) = m.get("command_line").and_then(Value::as_array) {
        let words: Vec<&str> = cl.iter().filter_map(Value::as_str).collect();
        action["description"] = json!(words.join(" "));
    }

    let mut has_part: Vec<Value> = vec![json!({"@id": "manifest.json"})];
    has_part.extend(results.iter().cloned());
    let mut root = json!({
        "@id": "./",
        "@type": "Dataset",
        "name": format!("{} outputs ({})", job.get("name").and_then(Value::as_str).unwrap_or(prog_name), run_id),
        "description": "Anomaly maps written by a Maskomaly batch run, with the run's provenance.",
        "conformsTo": {"@id": PROCESS_PROFILE},
        "hasPart": has_part,
        "mentions": {"@id": format!("#run-{run_id}")},
    });
    if let Some(end) = m.get("finished").and_then(Value::as_str) {
        root["datePublished"] = json!(end);
    } else {
        root["datePublished"] = json!(started);
    }
    graph.push(root);
    graph.push(json!({
        "@id": PROCESS_PROFILE,
        "@type": "CreativeWork",
        "name": "Process Run Crate",
        "version": "0.5",
    }));
    graph.push(action);
    graph.push(program);
    if let Some(lt) = libtorch {
        graph.push(lt);
    }
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

/// The value of `--job FILE` / `--job=FILE` on the recorded command line, if any.
fn job_file_argument(m: &Value) -> Option<String> {
    let cl: Vec<&str> = m
        .get("command_line")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    cl.iter().enumerate().find_map(|(i, w)| {
        if *w == "--job" {
            cl.get(i + 1).map(|s| s.to_string())
        } else {
            w.strip_prefix("--job=").map(str::to_string)
        }
    })
}

/// Writes `<output>/ro-crate-metadata.json` for a manifest (temp file + rename, like every output).
pub fn write(output: &Path, manifest: &Value) -> Result<(), RoCrateError> {
    let crate_json = from_manifest(manifest)?;
    let path = output.join(FILE_NAME);
    let text = serde_json::to_vec_pretty(&crate_json).expect("JSON values always serialise");
    crate::output::write_bytes_atomic(&path, &text)
        .map_err(|source| RoCrateError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Value {
        json!({
            "format": "maskomaly-manifest/1",
            "run_id": "r1",
            "program": {"name": "maskomaly", "version": "0.1.0", "git_commit": "abc123"},
            "command_line": ["maskomaly", "run", "--job", "jobs/x.yaml"],
            "job": {"name": "demo", "dataset": {"kind": "folder", "root": "/data in"}},
            "libtorch": "2.11.0",
            "device": "cpu",
            "checkpoint": {"path": "/models/model.pt", "format": "torchscript", "sha256": "ab"},
            "shard": null,
            "started": "2026-01-01T00:00:00Z",
            "finished": "2026-01-01T00:01:00Z",
            "status": "complete",
            "counts": {"total": 2, "written": 1, "failed": 1, "skipped": 0},
            "items": [
                {"input": "a/x 1.png", "input_sha256": "11", "stem": "a/x 1", "status": "written", "error": null,
                 "outputs": [{"path": "a/x 1.hdf5", "sha256": "22"}, {"path": "a/x 1.png", "sha256": "33"}]},
                {"input": "b.jpg", "input_sha256": "44", "stem": "b", "status": "failed", "error": "bad", "outputs": []}
            ]
        })
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
        m["status"] = json!("interrupted");
        m["finished"] = Value::Null;
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
    fn missing_fields_are_named() {
        let mut m = manifest();
        m.as_object_mut().unwrap().remove("program");
        assert!(from_manifest(&m)
            .unwrap_err()
            .to_string()
            .contains("/program/name"));
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
