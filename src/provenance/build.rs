//! What the build script recorded about this binary: the commit and the libtorch version, for the
//! manifest's `program` block and `maskomaly info`.

/// The commit this binary was built from (`-dirty` when tracked files differed), when the build
/// knew it.
pub fn git_commit() -> Option<String> {
    option_env!("MASKOMALY_GIT_COMMIT").map(str::to_string)
}

/// The libtorch version this binary was built against, or "unknown" when the build could not read
/// it: a reproducibility record never guesses.
pub fn libtorch_version() -> String {
    // The runtime library is the one the rpath or LD_LIBRARY_PATH resolves.
    option_env!("MASKOMALY_LIBTORCH_VERSION")
        .unwrap_or("unknown")
        .to_string()
}
