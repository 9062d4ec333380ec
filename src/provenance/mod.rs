//! Provenance: what a run did and how to check it afterwards.
//!
//! * [`build`]: the commit and libtorch version this binary was built from.
//! * [`manifest`]: the typed `manifest.json` (`maskomaly-manifest/1`), read and written here only,
//!   and the one rule for which settings must match between two runs.
//! * [`resume`]: what an earlier run in the same output folder left that a rerun can keep.
//! * [`shard`]: which slice of the listing an array task processes; where its manifest goes.
//! * [`merge`]: shard manifests into one; [`verify`]: re-checking a run; [`rocrate`]: the RO-Crate.
//! * [`outputs`]: what marks a folder as a run's output folder, which listings never read.
//! * [`stream`]: manifests and journals read and written one record at a time; [`sort`]: external
//!   sorting of records.

pub mod build;
pub mod manifest;
pub mod merge;
pub mod outputs;
pub mod resume;
pub mod rocrate;
pub mod shard;
pub mod sort;
pub mod stream;
pub mod verify;
