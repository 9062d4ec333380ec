//! RO-Crate provenance: `ro-crate-metadata.json` next to `manifest.json`, describing the run as an
//! RO-Crate 1.1 "Process Run Crate" (<https://w3id.org/ro/wfrun/process/0.5>).
//!
//! The crate is a pure function of the manifest, written as it reads the manifest's items (four
//! passes), so that it costs no memory per item: the run is a `CreateAction` whose `instrument` is
//! the program (a `SoftwareApplication` with its version), whose `object` lists the input images,
//! the resolved job and the checkpoint, and whose `result` lists the output files with their
//! SHA-256. Outputs live inside the crate (relative ids); inputs and the checkpoint live outside it
//! and get absolute `file://` ids. `manifest.json` is part of the crate and carries everything the
//! crate summarises (timings, numerics, libtorch).

use super::manifest::{ItemRecord, Manifest, RunStatus};
use super::stream::{manifest_error, ManifestReader};
use crate::diagnostic::{Diagnose, ExitCode};
use crate::output::pathtext;
use serde_json::{json, Map, Value};
use std::io::Write;
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
    #[error("cannot read the manifest's items")]
    Items(#[source] std::io::Error),
}

impl Diagnose for RoCrateError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RoCrateError::Job(_) => ExitCode::Data,
            RoCrateError::Write { .. } | RoCrateError::Items(_) => ExitCode::Io,
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

/// A pass over a manifest's item records (the crate reads them four times).
type ItemPass<'a> = Box<dyn Iterator<Item = std::io::Result<ItemRecord>> + 'a>;

/// A fresh pass over the records, each time it is called.
type ItemSource<'s, 'a> = &'s dyn Fn() -> std::io::Result<ItemPass<'a>>;

/// Builds the crate for a run from its manifest held in memory.
pub fn from_manifest(m: &Manifest) -> Result<Value, RoCrateError> {
    let mut text = Vec::new();
    write_crate(&mut text, m, &|| {
        Ok(Box::new(m.items.iter().cloned().map(Ok)))
    })?;
    Ok(serde_json::from_slice(&text).expect("the crate writer writes JSON"))
}

/// A marker for a list whose members are written as a stream.
fn marker(name: &str) -> Value {
    json!(format!("@@stream:{name}@@"))
}

fn io_err(source: std::io::Error) -> RoCrateError {
    RoCrateError::Items(source)
}

/// Writes one list member; `first` is false once a member has been written.
fn member(out: &mut dyn Write, first: &mut bool, v: &Value) -> Result<(), RoCrateError> {
    out.write_all(if *first { b"\n" } else { b",\n" })
        .map_err(io_err)?;
    *first = false;
    serde_json::to_writer(&mut *out, v).map_err(|e| io_err(e.into()))
}

/// Writes `value` with the lists marked by `names` filled by `fill`, in order.
fn write_with_streams(
    out: &mut dyn Write,
    value: &Value,
    names: &[&str],
    fill: &mut dyn FnMut(&mut dyn Write, &str) -> Result<(), RoCrateError>,
) -> Result<(), RoCrateError> {
    let mut text = serde_json::to_string(value).expect("JSON values always serialise");
    for name in names {
        let m = serde_json::to_string(&marker(name)).expect("a string");
        let at = text.find(&m).expect("the marker is in the text");
        out.write_all(&text.as_bytes()[..at]).map_err(io_err)?;
        out.write_all(b"[").map_err(io_err)?;
        fill(out, name)?;
        out.write_all(b"\n]").map_err(io_err)?;
        text = text[at + m.len()..].to_string();
    }
    out.write_all(text.as_bytes()).map_err(io_err)
}

/// An input (path, sha256) or an output (path, sha256) met in a pass.
enum Met<'a> {
    Input(&'a str, Option<&'a str>),
    Output(&'a str, &'a str),
}

/// One pass over the records: `f` meets each input and each output. Outputs are listed once:
/// every item of a manifest has its own stem, so only a record repeating an output path, which
/// would come right after it, is passed over (no set of every path is held).
fn pass(
    items: ItemSource<'_, '_>,
    f: &mut dyn FnMut(Met) -> Result<(), RoCrateError>,
) -> Result<(), RoCrateError> {
    let mut last = String::new();
    for it in items().map_err(io_err)? {
        let it = it.map_err(io_err)?;
        let input = pathtext::encode(&it.input).0;
        f(Met::Input(&input, it.input_sha256.as_deref()))?;
        for o in &it.outputs {
            let p = pathtext::encode(&o.path).0;
            if p != last {
                f(Met::Output(&p, &o.sha256))?;
                last = p;
            }
        }
    }
    Ok(())
}

/// Writes the crate for a run: `m` gives the header, `items` the records. The lists of inputs and
/// outputs stream (four passes over the records); nothing is held per item.
fn write_crate(
    out: &mut dyn Write,
    m: &Manifest,
    items: ItemSource<'_, '_>,
) -> Result<(), RoCrateError> {
    let job = m.job().map_err(RoCrateError::Job)?;
    let input_root = job.dataset.root.clone();
    let run_id = &m.run_id;
    let action_id = format!("#run-{run_id}");
    let program_id = format!("#program-{}-{}", m.program.name, m.program.version);
    let ck = &m.checkpoint;
    let ck_path = ck.path.to_string_lossy();
    let ck_id = file_id(Path::new("/"), &ck_path);
    let mut ck_entity = file_entity(ck_id.clone(), &ck_path, Some(&ck.sha256));
    ck_entity["description"] = json!(format!("model checkpoint ({})", ck.format));

    let mut action = json!({
        "@id": action_id,
        "@type": "CreateAction",
        "name": format!("{} run {run_id}", m.program.name),
        "instrument": {"@id": program_id},
        "object": marker("object"),
        "result": marker("result"),
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
    let root = json!({
        "@id": "./",
        "@type": "Dataset",
        "name": format!("{} outputs ({run_id})", job.name),
        "description": "Anomaly maps written by a Maskomaly batch run, with the run's provenance.",
        "conformsTo": {"@id": PROCESS_PROFILE},
        "hasPart": marker("hasPart"),
        "mentions": {"@id": action_id},
        "datePublished": m.finished.as_ref().unwrap_or(&m.started),
    });
    let mut head = vec![
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
    head.extend(software(m, &program_id));
    head.push(json!({
        "@id": "manifest.json",
        "@type": "File",
        "name": "manifest.json",
        "encodingFormat": "application/json",
        "description": "Run manifest (maskomaly-manifest/1): job, numerics, per-item timings and hashes.",
    }));
    head.push(job_entity(m));
    head.push(ck_entity);

    let mut fill = |out: &mut dyn Write, name: &str| -> Result<(), RoCrateError> {
        let mut first = true;
        if name == "hasPart" {
            member(out, &mut first, &json!({"@id": "manifest.json"}))?;
        }
        if name == "object" {
            // The resolved job is a parameter of the run; its text is the manifest's `job`.
            member(out, &mut first, &json!({"@id": "#job"}))?;
            member(out, &mut first, &json!({"@id": ck_id}))?;
        }
        pass(items, &mut |met| match (name, met) {
            ("object", Met::Input(p, _)) => {
                member(out, &mut first, &json!({"@id": file_id(&input_root, p)}))
            }
            ("hasPart" | "result", Met::Output(p, _)) => {
                member(out, &mut first, &json!({"@id": uri_path(p)}))
            }
            _ => Ok(()),
        })
    };
    out.write_all(b"{\"@context\":\"https://w3id.org/ro/crate/1.1/context\",\"@graph\":[")
        .map_err(io_err)?;
    let mut first = true;
    for v in &head {
        let names: &[&str] = match v["@id"].as_str() {
            Some("./") => &["hasPart"],
            Some(id) if id == action_id => &["object", "result"],
            _ => &[],
        };
        out.write_all(if first { b"\n" } else { b",\n" })
            .map_err(io_err)?;
        first = false;
        write_with_streams(out, v, names, &mut fill)?;
    }
    pass(items, &mut |met| {
        let e = match met {
            Met::Input(p, h) => file_entity(file_id(&input_root, p), p, h),
            Met::Output(p, h) => file_entity(uri_path(p), p, Some(h)),
        };
        member(out, &mut first, &e)
    })?;
    out.write_all(b"\n]}\n").map_err(io_err)
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

/// Writes `<output>/ro-crate-metadata.json` for a manifest held in memory (atomically, like every
/// output).
pub fn write(output: &Path, manifest: &Manifest) -> Result<(), RoCrateError> {
    write_file(output, manifest, &|| {
        Ok(Box::new(manifest.items.iter().cloned().map(Ok)))
    })
}

/// Writes `<output>/ro-crate-metadata.json` for the manifest `reader` reads, its items streaming.
pub fn write_from(output: &Path, reader: &ManifestReader) -> Result<(), RoCrateError> {
    write_file(output, reader.header(), &|| {
        let items = reader.items().map_err(std::io::Error::other)?;
        Ok(Box::new(items.map(|r| r.map_err(std::io::Error::other))))
    })
}

fn write_file(output: &Path, m: &Manifest, items: ItemSource<'_, '_>) -> Result<(), RoCrateError> {
    let path = output.join(FILE_NAME);
    let wrap = |source| RoCrateError::Write {
        path: path.clone(),
        source,
    };
    let staged = crate::output::Staged::new(&path).map_err(wrap)?;
    let file = std::fs::File::create(staged.path()).map_err(wrap)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, file);
    match write_crate(&mut out, m, items) {
        // A failed write is the crate's own; a failed read is the manifest's.
        Err(RoCrateError::Items(source)) if manifest_error(&source).is_none() => {
            return Err(wrap(source))
        }
        other => other?,
    }
    out.flush().map_err(wrap)?;
    drop(out);
    staged.commit().map_err(wrap)
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
