//! Advisory locks on an output folder, so that two runs never write one folder at once.
//!
//! A whole run holds an exclusive lock (std's `File::try_lock`: `flock` on Linux) on
//! `OUTPUT/.maskomaly.lock`; each task of an array job holds a shared lock on it (the tasks write
//! one tree side by side) and an exclusive lock on its own `manifests/.shard-K-of-N.lock`. The
//! kernel releases a lock when its process ends, however it ends, so a killed run never leaves a
//! stale lock. A second writer is refused at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Name of the lock file at the output root.
pub const LOCK_FILE: &str = ".maskomaly.lock";

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another maskomaly process is writing {folder} (it holds {path})")]
    Busy { folder: PathBuf, path: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl crate::diagnostic::Diagnose for LockError {
    fn exit_code(&self) -> crate::diagnostic::ExitCode {
        match self {
            LockError::Busy { .. } => crate::diagnostic::ExitCode::TempFail,
            LockError::Io { .. } => crate::diagnostic::ExitCode::CantCreate,
        }
    }

    fn hint(&self) -> Option<String> {
        matches!(self, LockError::Busy { .. })
            .then(|| "wait for the other run to finish, or choose another output folder".into())
    }
}

/// A held lock; released on drop (or when the process ends). The last holder removes the file on
/// drop, while still holding it, so a run leaves no trace; [`try_lock`] copes with that. A shared
/// holder is the last when it can turn its lock exclusive.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    path: PathBuf,
    exclusive: bool,
}

impl Lock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // On Linux this converts the held shared `flock` to an exclusive one. A failed conversion
        // may drop the shared lock early, which is being let go anyway.
        let last = self.exclusive || self._file.try_lock().is_ok();
        if last {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How long a shared request waits out an exclusive lock: a departing shard holds one for an
/// instant while it removes the file.
const SHARED_PATIENCE: std::time::Duration = std::time::Duration::from_millis(200);

/// Locks `path` (created if missing) without waiting, exclusive or shared when `shared`; a shared
/// request waits out a departing holder's instant (at most [`SHARED_PATIENCE`]).
/// `folder` only names the locked thing in the message.
pub fn try_lock(path: &Path, shared: bool, folder: &Path) -> Result<Lock, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let start = std::time::Instant::now();
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let locked = if shared {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if shared && start.elapsed() < SHARED_PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(2));
                continue;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Busy {
                    folder: folder.to_path_buf(),
                    path: path.to_path_buf(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // A holder that gave up may have removed the file between our open and our flock: then
        // the lock is on a name nobody else will open. Lock the file the path names now.
        let held = file.metadata().map_err(io)?;
        match std::fs::metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                return Ok(Lock {
                    _file: file,
                    path: path.to_path_buf(),
                    exclusive: !shared,
                })
            }
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        }
    }
}

/// Locks an output folder for a whole run (`shard: None`) or for one shard of an array job.
/// The folder must exist. Returns the locks held, outermost first.
pub fn lock_output(out_root: &Path, shard: Option<(usize, usize)>) -> Result<Vec<Lock>, LockError> {
    let root = out_root.join(LOCK_FILE);
    match shard {
        None => Ok(vec![try_lock(&root, false, out_root)?]),
        Some((k, n)) => {
            let outer = try_lock(&root, true, out_root)?;
            let dir = out_root.join(super::MANIFESTS_DIR);
            std::fs::create_dir_all(&dir).map_err(|source| LockError::Io {
                path: dir.clone(),
                source,
            })?;
            let inner = dir.join(format!(".shard-{k:05}-of-{n:05}.lock"));
            let inner = try_lock(&inner, false, out_root)?;
            Ok(vec![outer, inner])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_exclusive_lock_is_refused_until_the_first_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let first = lock_output(d.path(), None).unwrap();
        let e = lock_output(d.path(), None).unwrap_err();
        assert!(matches!(e, LockError::Busy { .. }), "{e}");
        assert!(e.to_string().contains("another maskomaly process"), "{e}");
        // Shards share the folder with each other, not with a whole run.
        assert!(lock_output(d.path(), Some((0, 2))).is_err());
        drop(first);
        let s0 = lock_output(d.path(), Some((0, 2))).unwrap();
        let s1 = lock_output(d.path(), Some((1, 2))).unwrap();
        assert!(
            lock_output(d.path(), Some((1, 2))).is_err(),
            "one task per shard"
        );
        assert!(lock_output(d.path(), None).is_err());
        drop(s0);
        assert!(
            d.path().join(LOCK_FILE).exists(),
            "shard 1 still holds the root lock"
        );
        drop(s1);
        assert!(
            !d.path().join(LOCK_FILE).exists(),
            "the last shard to finish removes the root lock file"
        );
        assert!(lock_output(d.path(), None).is_ok());
    }

    /// The locks are `flock`s, so an older binary or `flock(1)` in a script excludes this one.
    #[test]
    fn a_flock_held_by_another_program_is_respected() {
        use std::os::fd::AsRawFd;
        let d = tempfile::tempdir().unwrap();
        let f = File::create(d.path().join(LOCK_FILE)).unwrap();
        // SAFETY: flock on a descriptor this test owns.
        let held = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
        assert_eq!(held, 0);
        let e = lock_output(d.path(), None).unwrap_err();
        assert!(matches!(e, LockError::Busy { .. }), "{e}");
        assert!(
            e.to_string().contains(&d.path().display().to_string()),
            "{e}"
        );
        drop(lock_output(d.path(), Some((0, 1))).unwrap());
        drop(f);
        assert!(lock_output(d.path(), None).is_ok());
    }

    #[test]
    fn shards_starting_while_others_finish_all_get_the_lock() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_path_buf();
        let workers: Vec<_> = (0..4)
            .map(|k| {
                let root = root.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let held = lock_output(&root, Some((k, 4)))
                            .unwrap_or_else(|e| panic!("shard {k}: {e}"));
                        drop(held);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert!(!root.join(LOCK_FILE).exists());
    }
}
