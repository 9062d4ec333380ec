//! The output folder a run holds: locked, probed for writing, and left as it was found if the run
//! ends before it writes anything.

use super::RunError;
use crate::output::lock;
use crate::output::MANIFESTS_DIR;
use crate::provenance::shard::Shard;
use std::path::{Path, PathBuf};

/// The target name of the start-up write test (only its temporary name is ever written).
pub const WRITE_TEST: &str = ".write-test";

/// The output folder held by this run: locked, and created by it if it did not exist. A run that
/// fails before it writes anything removes what it created, leaving the folder as it found it.
pub struct OutputGuard {
    _locks: Vec<lock::Lock>,
    /// Folders this run created (deepest first), removed again if the run writes nothing.
    created: Vec<PathBuf>,
    pub committed: bool,
}

impl OutputGuard {
    pub fn acquire(out_root: &Path, shard: Option<&Shard>) -> Result<OutputGuard, RunError> {
        let mut created = Vec::new();
        let mut p = Some(out_root);
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            created.push(d.to_path_buf());
            p = d.parent();
        }
        let cant = |source| RunError::CantCreate {
            path: out_root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(out_root).map_err(cant)?;
        let mut guard = OutputGuard {
            _locks: Vec::new(),
            created,
            committed: false,
        };
        let manifests = out_root.join(MANIFESTS_DIR);
        if shard.is_some() && !manifests.exists() {
            guard.created.insert(0, manifests);
        }
        guard._locks = lock::lock_output(out_root, shard.map(|s| (s.index, s.count)))?;
        // Writable? (A temporary name of this process, removed at once.)
        let probe = crate::output::temp_path(&out_root.join(WRITE_TEST));
        std::fs::write(&probe, b"").map_err(cant)?;
        let _ = std::fs::remove_file(&probe);
        Ok(guard)
    }
}

impl Drop for OutputGuard {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Lock files go first (an exclusive lock removes its own); then the empty folders.
        self._locks.clear();
        for d in &self.created {
            let _ = std::fs::remove_dir(d);
        }
    }
}
