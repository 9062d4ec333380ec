//! What marks a folder as one maskomaly writes into, so that listings never take a run's outputs as
//! its inputs: the run's own output root (even before it holds anything), a `manifest.json` of
//! maskomaly's format, shard manifests under `manifests/`, or the lock of a run in progress.

use super::manifest::FORMAT;
use super::shard::parse_manifest_name;
use crate::output::{lock::LOCK_FILE, MANIFESTS_DIR};
use std::io::Read;
use std::path::Path;

/// The exclusion a listing takes ([`crate::dataset::Exclude`]): `output_root` (compared by
/// identity, so any spelling of it matches) and every folder holding a maskomaly manifest.
pub fn exclude(output_root: Option<&Path>) -> impl Fn(&Path) -> Option<&'static str> {
    let root = output_root.and_then(FileId::of);
    move |dir| {
        if root.is_some() && FileId::of(dir) == root {
            Some("the output folder")
        } else if holds_outputs(dir) {
            Some("a maskomaly output folder (it holds a manifest)")
        } else {
            None
        }
    }
}

/// Whether `dir` holds a maskomaly manifest, shard manifests, or a run's lock.
pub fn holds_outputs(dir: &Path) -> bool {
    if dir.join(LOCK_FILE).is_file() {
        return true;
    }
    // The format key comes first in the file; its value is enough to tell.
    let mark = format!("\"{}", FORMAT.split('/').next().unwrap_or(FORMAT));
    let mut head = Vec::new();
    if std::fs::File::open(dir.join("manifest.json"))
        .and_then(|f| f.take(4096).read_to_end(&mut head))
        .is_ok()
        && head.windows(mark.len()).any(|w| w == mark.as_bytes())
    {
        return true;
    }
    std::fs::read_dir(dir.join(MANIFESTS_DIR)).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_str()
                .and_then(parse_manifest_name)
                .is_some()
        })
    })
}

/// A file's identity (device, inode), which survives different spellings of its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| FileId(m.dev(), m.ino()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::tests::{stems, touch};
    use crate::dataset::{walk_folder_excluding, DatasetError};

    #[test]
    fn output_folders_are_never_listed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        touch(
            root,
            &[
                "a.png",
                "scores/a.png",
                "scores/a_heat.png",
                "old/b.png",
                "shards/x.png",
                "busy/y.png",
                "notes/c.png",
                "plain/d.png",
            ],
        );
        // An earlier run's output folder, an array's, one in use.
        std::fs::write(
            root.join("old/manifest.json"),
            "{\"format\":\"maskomaly-manifest/1\",\"run_id\":\"x\"}",
        )
        .unwrap();
        touch(root, &["shards/manifests/shard-00000-of-00002.json"]);
        touch(root, &["busy/.maskomaly.lock"]);
        // Someone else's manifest.json is no reason to skip a folder.
        std::fs::write(root.join("notes/manifest.json"), "{\"format\": \"other\"}").unwrap();
        std::fs::create_dir_all(root.join("plain/manifests")).unwrap();
        // The run's own output root (still without a manifest: a first run), spelled another way.
        let spelled = root.join("plain/../scores");
        let items = walk_folder_excluding(root, &exclude(Some(&spelled))).unwrap();
        assert_eq!(stems(&items), ["a", "notes/c", "plain/d"]);
        // Without an output root only the folders holding manifests are skipped.
        let items = walk_folder_excluding(root, &exclude(None)).unwrap();
        assert_eq!(
            stems(&items),
            ["a", "notes/c", "plain/d", "scores/a", "scores/a_heat"]
        );
    }

    #[test]
    fn an_input_folder_that_is_an_output_folder_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), &["a.png"]);
        let e = walk_folder_excluding(d.path(), &exclude(Some(d.path()))).unwrap_err();
        assert!(
            matches!(
                e,
                DatasetError::HoldsOutputs {
                    why: "the output folder",
                    ..
                }
            ),
            "{e}"
        );
        std::fs::write(
            d.path().join("manifest.json"),
            "{\n  \"format\": \"maskomaly-manifest/1\"\n}",
        )
        .unwrap();
        let e = walk_folder_excluding(d.path(), &exclude(None)).unwrap_err();
        assert!(e.to_string().contains("holds a manifest"), "{e}");
    }
}
