//! Fetching a missing checkpoint: when `checkpoint.path` does not exist and `checkpoint.url` is
//! set, the file is downloaded once into a cache (`$MASKOMALY_CACHE`, default
//! `~/.cache/maskomaly`), its SHA-256 checked, then used from there.
//!
//! The download goes to a temporary name in the cache folder and is renamed only after the
//! checksum matched, so an interrupted or corrupt download never looks like a cached file.
//! Network failures are [`ModelError::Download`]: a temporary condition worth retrying.

use crate::job::{CheckpointFormat, Job};
use crate::model::ModelError;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cache folder: `$MASKOMALY_CACHE`, else `$HOME/.cache/maskomaly`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MASKOMALY_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("maskomaly")
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    crate::output::digest::sha256_file(path).map_err(|e| ModelError::Load {
        path: path.into(),
        message: e.to_string(),
    })
}

use crate::output::digest::hex;

/// Checks `path` against an expected SHA-256 (any case); no expectation passes.
pub fn verify(path: &Path, expected: Option<&str>) -> Result<(), ModelError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let found = sha256_file(path)?;
    if found.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(ModelError::Checksum {
            path: path.into(),
            expected: expected.to_string(),
            found,
        })
    }
}

/// The file name a URL is cached under (its last path segment, without query).
fn cache_name(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let name = no_query.rsplit('/').next().unwrap_or("");
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    if clean.is_empty() || clean.starts_with('.') {
        "checkpoint".into()
    } else {
        clean
    }
}

/// Returns a usable local file for a checkpoint: `path` itself when it exists, else the cached
/// copy of `url` (downloaded now if needed). The SHA-256, when given, is checked in every case.
pub fn resolve(
    path: &Path,
    url: Option<&str>,
    sha256: Option<&str>,
) -> Result<PathBuf, ModelError> {
    if path.exists() {
        if path.is_file() {
            verify(path, sha256)?;
        }
        return Ok(path.to_path_buf());
    }
    let Some(url) = url else {
        return Err(ModelError::Missing {
            path: path.to_path_buf(),
        });
    };
    let dir = cache_dir();
    let target = dir.join(cache_name(url));
    if target.is_file() {
        match verify(&target, sha256) {
            Ok(()) => {
                log::info!("using cached checkpoint {}", target.display());
                return Ok(target);
            }
            Err(ModelError::Checksum { .. }) => {
                log::warn!(
                    "cached {} fails its checksum; fetching again",
                    target.display()
                )
            }
            Err(e) => return Err(e),
        }
    }
    download(url, &target, sha256)?;
    Ok(target)
}

/// Downloads `url` to `target` through a temporary file in the same folder.
pub fn download(url: &str, target: &Path, sha256: Option<&str>) -> Result<(), ModelError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let fail = |message: String| ModelError::Download {
        url: url.to_string(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        fail(format!(
            "cannot create the cache folder {}: {e}",
            dir.display()
        ))
    })?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let total = resp.body().content_length();
    let bar = crate::progress::bytes(total, format!("fetching {}", cache_name(url)));
    let staged = crate::output::Staged::new(target)
        .map_err(|e| fail(format!("cannot write {}: {e}", dir.display())))?;
    let tmp = staged.path();
    let result = (|| -> Result<String, ModelError> {
        let mut out = std::fs::File::create(tmp)
            .map_err(|e| fail(format!("cannot write {}: {e}", tmp.display())))?;
        let mut reader = resp.body_mut().as_reader();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut got: u64 = 0;
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| fail(format!("after {got} bytes: {e}")))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| fail(format!("cannot write {}: {e}", tmp.display())))?;
            got += n as u64;
            bar.set_position(got);
        }
        if let Some(t) = total {
            if got != t {
                return Err(fail(format!("received {got} of {t} bytes")));
            }
        }
        out.sync_all()
            .map_err(|e| fail(format!("cannot write {}: {e}", tmp.display())))?;
        Ok(hex(&h.finalize()))
    })();
    bar.finish_and_clear();
    let found = result?;
    if let Some(expected) = sha256 {
        if !found.eq_ignore_ascii_case(expected.trim()) {
            return Err(ModelError::Checksum {
                path: target.to_path_buf(),
                expected: expected.to_string(),
                found,
            });
        }
    }
    staged
        .commit()
        .map_err(|e| fail(format!("cannot move the download into place: {e}")))?;
    log::info!("fetched {url} -> {} (sha256 {found})", target.display());
    Ok(())
}

/// Finds the job's checkpoint the way every command does: `checkpoint.path` when it exists, else
/// the job's own `checkpoint.url` downloaded into the cache (never another file's URL); checks
/// `checkpoint.sha256` when the job gives one. Returns the job pointing at the local file and the
/// file's SHA-256 (for the manifest).
pub fn resolve_checkpoint(job: &Job) -> Result<(Job, String), ModelError> {
    let ck = &job.checkpoint;
    if ck.format == CheckpointFormat::Random {
        return Ok((
            job.clone(),
            format!("random-seed-{}", crate::model::RANDOM_SEED),
        ));
    }
    let path = resolve(&ck.path, ck.effective_url(), None)?;
    let file = if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.clone()
    };
    let found = sha256_file(&file)?;
    if let Some(expected) = &ck.sha256 {
        if !expected.trim().eq_ignore_ascii_case(&found) {
            return Err(ModelError::Checksum {
                path: file,
                expected: expected.clone(),
                found,
            });
        }
    }
    let mut resolved = job.clone();
    resolved.checkpoint.path = path;
    resolved.checkpoint.sha256 = None; // checked here once; the loader need not hash it again
    Ok((resolved, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// A one-file HTTP/1.1 server on 127.0.0.1 that answers `n` requests, then stops.
    fn serve(body: Vec<u8>, n: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(n) {
                let Ok(mut s) = stream else { continue };
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                let _ = r.read_line(&mut first);
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                }
                let resp = if first.contains("/missing") {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec()
                } else {
                    let mut v = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    v.extend(&body);
                    v
                };
                let _ = s.write_all(&resp);
            }
        });
        format!("http://{addr}")
    }

    fn sha(b: &[u8]) -> String {
        hex(&Sha256::digest(b))
    }

    #[test]
    fn downloads_verifies_and_caches() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let base = serve(body.clone(), 3);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("cache").join("w.pkl");
        download(
            &format!("{base}/w.pkl"),
            &target,
            Some(&sha(&body).to_uppercase()),
        )
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), body);

        // Wrong checksum: nothing is left behind under either name.
        let bad = dir.path().join("cache").join("bad.pkl");
        let e = download(&format!("{base}/bad.pkl"), &bad, Some(&"0".repeat(64))).unwrap_err();
        assert!(matches!(e, ModelError::Checksum { .. }), "{e}");
        assert!(!bad.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .collect();
        assert_eq!(leftovers.len(), 1, "only the good file stays");

        // HTTP error: a Download error naming the URL.
        let e = download(&format!("{base}/missing"), &dir.path().join("m"), None).unwrap_err();
        match &e {
            ModelError::Download { url, .. } => assert!(url.ends_with("/missing")),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn unreachable_server_is_a_download_error() {
        // Bind then drop: the port is closed, connecting fails at once.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/model_final_17c1ee.pkl");
        let dir = tempfile::tempdir().unwrap();
        let e = download(&url, &dir.path().join("x.pkl"), None).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ModelError::Download { .. }));
        assert!(text.contains(&url), "{text}");
        let hint = crate::diagnostic::Diagnose::hint(&e).unwrap();
        assert!(hint.contains("checkpoint.path"), "{hint}");
    }

    #[test]
    fn existing_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.bin");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(resolve(&f, None, Some(&sha(b"abc"))).unwrap(), f);
        assert!(matches!(
            resolve(&f, None, Some("00")),
            Err(ModelError::Checksum { .. })
        ));
        assert!(matches!(
            resolve(&dir.path().join("nope"), None, None),
            Err(ModelError::Missing { .. })
        ));
        assert_eq!(
            cache_name("https://x.org/a/model_final_17c1ee.pkl?dl=1"),
            "model_final_17c1ee.pkl"
        );
        assert_eq!(cache_name("https://x.org/"), "checkpoint");
    }
}
