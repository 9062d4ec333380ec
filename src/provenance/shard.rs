//! Sharding: which slice of the sorted input listing one task of an array job processes.
//!
//! A shard is `index` of `count` (0-based). It comes from `--shard K/N`, or, with no flag, from the
//! batch system's environment:
//!
//! | source | index | count |
//! | --- | --- | --- |
//! | Slurm job array | `SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN` (÷ `SLURM_ARRAY_TASK_STEP`) | `--shards` / `MASKOMALY_SHARDS`, else `SLURM_ARRAY_TASK_COUNT` |
//! | Kubernetes Indexed Job | `JOB_COMPLETION_INDEX` | `--shards` / `MASKOMALY_SHARDS` (= `completions`) |
//! | AWS Batch array job | `AWS_BATCH_JOB_ARRAY_INDEX` | `--shards` / `MASKOMALY_SHARDS` (= array size) |
//!
//! The slice is **contiguous**: shard `k` of `n` takes items `[k·len/n, (k+1)·len/n)` of the listing
//! (sorted byte-wise by relative path). Slices differ in size by at most one item, are disjoint,
//! cover the listing, and depend only on the listing, `k` and `n`, so a retried task redoes exactly
//! its own items. Contiguous rather than strided so that one shard's outputs stay together in the
//! output tree (sub-folders are split across at most two shards), which keeps partial results and
//! per-shard manifests easy to read.

use crate::diagnostic::{Diagnose, ExitCode};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable holding the shard count for engines that do not export one.
pub const SHARDS_ENV: &str = "MASKOMALY_SHARDS";

/// Upper bound on the shard count (AWS Batch arrays stop at 10,000; Slurm's default `MaxArraySize`
/// is 1001). Keeps the five-digit manifest names unambiguous.
pub const MAX_SHARDS: usize = 99_999;

/// Where a shard's index came from.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ShardSource {
    /// `--shard K/N`
    Flag,
    Slurm,
    Kubernetes,
    AwsBatch,
}

impl ShardSource {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One task's share of a job: `index` of `count`, 0-based. Serialised as the manifest's `shard`
/// (fields in alphabetical order, as the manifest has always written them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub count: usize,
    pub index: usize,
    pub source: ShardSource,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A shard setting that cannot be used. Flags are usage errors (exit 64); a bad environment is a
/// configuration error (exit 78): retrying the same task cannot fix either.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShardError {
    #[error("--shard {value}: {message}")]
    Flag { value: String, message: String },
    #[error("--shards {value}: must be a whole number from 1 to {MAX_SHARDS}")]
    Count { value: String },
    #[error("{var}={value}: {message}")]
    Env {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error("{index_var} is set but the shard count is not")]
    NoCount { index_var: &'static str },
    #[error("a shard count is set ({from}) but no shard index was found")]
    NoIndex { from: String },
    #[error("shard index {index} from {source_name} is not below the shard count {count}")]
    OutOfRange {
        index: usize,
        count: usize,
        source_name: &'static str,
    },
}

impl Diagnose for ShardError {
    fn exit_code(&self) -> ExitCode {
        match self {
            ShardError::Flag { .. } | ShardError::Count { .. } => ExitCode::Usage,
            _ => ExitCode::Config,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ShardError::Flag { .. } => "write the shard as K/N with 0 <= K < N, e.g. --shard 0/4".into(),
            ShardError::NoCount { .. } => {
                format!("pass --shards N or set {SHARDS_ENV}=N (N = number of tasks)")
            }
            ShardError::NoIndex { .. } => "run as an array task (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX) or pass --shard K/N".into(),
            ShardError::OutOfRange { .. } => "the array must have exactly as many tasks as shards".into(),
            ShardError::Count { .. } | ShardError::Env { .. } => return None,
        })
    }
}

/// The shard a task runs, with one line saying why (for the log).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub shard: Option<Shard>,
    pub reason: String,
}

/// Parses `K/N`.
pub fn parse_flag(value: &str) -> Result<Shard, ShardError> {
    let bad = |message: &str| ShardError::Flag {
        value: value.to_string(),
        message: message.to_string(),
    };
    let (k, n) = value.split_once('/').ok_or_else(|| bad("missing '/'"))?;
    let index: usize = k
        .trim()
        .parse()
        .map_err(|_| bad("K is not a whole number"))?;
    let count: usize = n
        .trim()
        .parse()
        .map_err(|_| bad("N is not a whole number"))?;
    if count == 0 || count > MAX_SHARDS {
        return Err(bad(&format!("N must lie in 1..={MAX_SHARDS}")));
    }
    if index >= count {
        return Err(bad("K must be below N (K counts from 0)"));
    }
    Ok(Shard {
        index,
        count,
        source: ShardSource::Flag,
    })
}

fn parse_count(value: &str) -> Result<usize, ShardError> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_SHARDS).contains(&n) => Ok(n),
        _ => Err(ShardError::Count {
            value: value.to_string(),
        }),
    }
}

fn env_number(var: &'static str, value: &str) -> Result<usize, ShardError> {
    value.trim().parse::<usize>().map_err(|_| ShardError::Env {
        var,
        value: value.to_string(),
        message: "not a whole number".into(),
    })
}

/// Decides the shard from the flags and the environment (`env` looks a variable up, so tests need
/// not touch the process environment). `flag` is `--shard K/N`, `shards` is `--shards N`.
pub fn resolve(
    flag: Option<&str>,
    shards: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, ShardError> {
    if let Some(v) = flag {
        let shard = parse_flag(v)?;
        if let Some(n) = shards {
            if parse_count(n)? != shard.count {
                return Err(ShardError::Flag {
                    value: v.to_string(),
                    message: format!("N disagrees with --shards {n}"),
                });
            }
        }
        return Ok(Resolved {
            reason: format!("shard {shard} from --shard {v}"),
            shard: Some(shard),
        });
    }

    // The count given by the user, for engines that do not export one (or to override Slurm's).
    let (count, count_from) = match shards {
        Some(n) => (Some(parse_count(n)?), format!("--shards {n}")),
        None => match env(SHARDS_ENV) {
            Some(n) => {
                let c = parse_count(&n).map_err(|_| ShardError::Env {
                    var: SHARDS_ENV,
                    value: n.clone(),
                    message: format!("must be a whole number from 1 to {MAX_SHARDS}"),
                })?;
                (Some(c), format!("{SHARDS_ENV}={n}"))
            }
            None => (None, String::new()),
        },
    };

    if let Some(id) = env("SLURM_ARRAY_TASK_ID") {
        let id_n = env_number("SLURM_ARRAY_TASK_ID", &id)?;
        let min = env("SLURM_ARRAY_TASK_MIN")
            .map(|v| env_number("SLURM_ARRAY_TASK_MIN", &v))
            .transpose()?;
        let step = env("SLURM_ARRAY_TASK_STEP")
            .map(|v| env_number("SLURM_ARRAY_TASK_STEP", &v))
            .transpose()?;
        let min = min.unwrap_or(0);
        let step = step.unwrap_or(1).max(1);
        if id_n < min || (id_n - min) % step != 0 {
            return Err(ShardError::Env {
                var: "SLURM_ARRAY_TASK_ID",
                value: id,
                message: format!(
                    "is not on the array's grid (min {min}, step {step}); pass --shard K/N"
                ),
            });
        }
        let index = (id_n - min) / step;
        let (count, from) = match count {
            Some(c) => (c, count_from),
            None => match env("SLURM_ARRAY_TASK_COUNT") {
                Some(v) => (
                    env_number("SLURM_ARRAY_TASK_COUNT", &v)?,
                    format!("SLURM_ARRAY_TASK_COUNT={v}"),
                ),
                None => {
                    return Err(ShardError::NoCount {
                        index_var: "SLURM_ARRAY_TASK_ID",
                    })
                }
            },
        };
        let shard = check(index, count, ShardSource::Slurm, "SLURM_ARRAY_TASK_ID")?;
        let reason = format!(
            "shard {shard} from Slurm (SLURM_ARRAY_TASK_ID={id}, SLURM_ARRAY_TASK_MIN={min}, step {step}, {from})"
        );
        return Ok(Resolved {
            shard: Some(shard),
            reason,
        });
    }

    for (var, source) in [
        ("JOB_COMPLETION_INDEX", ShardSource::Kubernetes),
        ("AWS_BATCH_JOB_ARRAY_INDEX", ShardSource::AwsBatch),
    ] {
        if let Some(v) = env(var) {
            let index = env_number(var, &v)?;
            let count = count.ok_or(ShardError::NoCount { index_var: var })?;
            let shard = check(index, count, source, var)?;
            return Ok(Resolved {
                reason: format!("shard {shard} from {var}={v}, {count_from}"),
                shard: Some(shard),
            });
        }
    }

    if count.is_some() {
        return Err(ShardError::NoIndex { from: count_from });
    }
    Ok(Resolved {
        shard: None,
        reason: "no shard (no --shard flag, not an array task): processing every item".into(),
    })
}

fn check(
    index: usize,
    count: usize,
    source: ShardSource,
    source_name: &'static str,
) -> Result<Shard, ShardError> {
    if count == 0 || count > MAX_SHARDS {
        return Err(ShardError::Env {
            var: source_name,
            value: index.to_string(),
            message: format!("shard count {count} is not in 1..={MAX_SHARDS}"),
        });
    }
    if index >= count {
        return Err(ShardError::OutOfRange {
            index,
            count,
            source_name,
        });
    }
    Ok(Shard {
        index,
        count,
        source,
    })
}

/// The shard from the process environment (see [`resolve`]).
pub fn from_env(flag: Option<&str>, shards: Option<&str>) -> Result<Resolved, ShardError> {
    resolve(flag, shards, &|k| {
        std::env::var(k).ok().filter(|v| !v.is_empty())
    })
}

/// Bounds of shard `index` of `count` in a listing of `len` items: `[start, end)`.
pub fn range(len: usize, index: usize, count: usize) -> std::ops::Range<usize> {
    assert!(
        count > 0 && index < count,
        "shard {index}/{count} is not valid"
    );
    // u128: len·count overflows usize only for absurd inputs, but the bound must hold for any len.
    let at = |k: usize| ((len as u128 * k as u128) / count as u128) as usize;
    at(index)..at(index + 1)
}

/// The items of `items` (already in listing order) that `shard` processes; all of them for `None`.
pub fn select<T: Clone>(items: &[T], shard: Option<&Shard>) -> Vec<T> {
    match shard {
        None => items.to_vec(),
        Some(s) => items[range(items.len(), s.index, s.count)].to_vec(),
    }
}

use crate::output::MANIFESTS_DIR;

/// `<output>/manifest.json` for a whole run, `<output>/manifests/shard-KKKKK-of-NNNNN.json` for a shard.
pub fn manifest_path(output: &Path, shard: Option<&Shard>) -> PathBuf {
    match shard {
        None => output.join("manifest.json"),
        Some(s) => output
            .join(MANIFESTS_DIR)
            .join(format!("shard-{:05}-of-{:05}.json", s.index, s.count)),
    }
}

/// Parses a shard manifest's file name back into `(index, count)`.
pub fn parse_manifest_name(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("shard-")?.strip_suffix(".json")?;
    let (k, n) = rest.split_once("-of-")?;
    if k.len() != 5 || n.len() != 5 {
        return None;
    }
    Some((k.parse().ok()?, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn source_names_are_the_manifest_names() {
        for &s in <ShardSource as strum::VariantArray>::VARIANTS {
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(Some(s.as_str()), json.as_str());
        }
        assert_eq!(ShardSource::AwsBatch.as_str(), "aws_batch");
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn res(
        flag: Option<&str>,
        shards: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Resolved, ShardError> {
        resolve(flag, shards, &env_of(env))
    }

    #[test]
    fn flag_parses_and_wins_over_environment() {
        let r = res(
            Some("2/5"),
            None,
            &[
                ("SLURM_ARRAY_TASK_ID", "0"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ],
        )
        .unwrap();
        assert_eq!(
            r.shard,
            Some(Shard {
                index: 2,
                count: 5,
                source: ShardSource::Flag
            })
        );
        assert!(r.reason.contains("--shard 2/5"), "{}", r.reason);
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for v in ["3", "3/3", "a/3", "1/0", "-1/3", "1/100000", "1/b"] {
            let e = res(Some(v), None, &[]).unwrap_err();
            assert_eq!(e.exit_code(), ExitCode::Usage, "{v}: {e}");
            assert!(e.hint().is_some_and(|h| h.contains("K/N")), "{e}");
        }
        assert!(matches!(
            res(Some("1/3"), Some("4"), &[]),
            Err(ShardError::Flag { .. })
        ));
        assert!(res(Some("1/3"), Some("3"), &[]).is_ok());
        assert!(matches!(
            res(None, Some("0"), &[]),
            Err(ShardError::Count { .. })
        ));
    }

    #[test]
    fn nothing_set_means_no_shard() {
        let r = res(None, None, &[]).unwrap();
        assert_eq!(r.shard, None);
        assert!(r.reason.contains("every item"));
    }

    #[test]
    fn slurm_array_uses_min_offset_and_step() {
        let r = res(
            None,
            None,
            &[
                ("SLURM_ARRAY_TASK_ID", "7"),
                ("SLURM_ARRAY_TASK_MIN", "5"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ],
        )
        .unwrap();
        assert_eq!(
            r.shard,
            Some(Shard {
                index: 2,
                count: 4,
                source: ShardSource::Slurm
            })
        );
        assert!(r.reason.contains("SLURM_ARRAY_TASK_ID=7"), "{}", r.reason);

        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "5"),
        ];
        assert_eq!(res(None, None, &stepped).unwrap().shard.unwrap().index, 3);
        let off_grid = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "5"),
        ];
        assert_eq!(
            res(None, None, &off_grid).unwrap_err().exit_code(),
            ExitCode::Config
        );
    }

    #[test]
    fn slurm_count_can_be_overridden_and_is_checked() {
        let env = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(res(None, Some("8"), &env).unwrap().shard.unwrap().count, 8);
        assert!(matches!(
            res(None, Some("2"), &env),
            Err(ShardError::OutOfRange {
                index: 3,
                count: 2,
                ..
            })
        ));
        assert!(matches!(
            res(None, None, &[("SLURM_ARRAY_TASK_ID", "0")]),
            Err(ShardError::NoCount {
                index_var: "SLURM_ARRAY_TASK_ID"
            })
        ));
    }

    #[test]
    fn kubernetes_and_aws_need_a_count() {
        let k8s = [("JOB_COMPLETION_INDEX", "4"), (SHARDS_ENV, "6")];
        assert_eq!(
            res(None, None, &k8s).unwrap().shard,
            Some(Shard {
                index: 4,
                count: 6,
                source: ShardSource::Kubernetes
            })
        );
        assert!(matches!(
            res(None, None, &k8s[..1]),
            Err(ShardError::NoCount { .. })
        ));
        let aws = [("AWS_BATCH_JOB_ARRAY_INDEX", "9")];
        assert_eq!(
            res(None, Some("10"), &aws).unwrap().shard,
            Some(Shard {
                index: 9,
                count: 10,
                source: ShardSource::AwsBatch
            })
        );
        assert!(matches!(
            res(None, Some("9"), &aws),
            Err(ShardError::OutOfRange { .. })
        ));
        let e = res(
            None,
            None,
            &[("AWS_BATCH_JOB_ARRAY_INDEX", "x"), (SHARDS_ENV, "3")],
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Config);
    }

    #[test]
    fn a_count_without_an_index_is_an_error() {
        // A pod of a non-indexed Job would otherwise process everything, N times over.
        assert!(matches!(
            res(None, None, &[(SHARDS_ENV, "4")]),
            Err(ShardError::NoIndex { .. })
        ));
        assert!(matches!(
            res(None, Some("4"), &[]),
            Err(ShardError::NoIndex { .. })
        ));
    }

    /// Partition properties over many (len, n): disjoint, complete, in order, balanced, and the
    /// same on every call.
    #[test]
    fn slices_partition_every_listing() {
        for len in (0..70).chain([97, 1000, 4099]) {
            let items: Vec<usize> = (0..len).collect();
            for n in (1..=40).chain([99, 1000, 5000]) {
                let mut union = Vec::with_capacity(len);
                let (mut lo, mut hi) = (usize::MAX, 0);
                for k in 0..n {
                    let s = Shard {
                        index: k,
                        count: n,
                        source: ShardSource::Flag,
                    };
                    let part = select(&items, Some(&s));
                    assert_eq!(part, select(&items, Some(&s)), "stable");
                    lo = lo.min(part.len());
                    hi = hi.max(part.len());
                    union.extend(part);
                }
                // Concatenation in shard order equals the listing: disjoint, complete, contiguous.
                assert_eq!(union, items, "len {len}, n {n}");
                assert!(hi - lo <= 1, "len {len}, n {n}: sizes {lo}..{hi}");
            }
        }
    }

    #[test]
    fn slice_depends_only_on_listing_and_shard() {
        // Pseudo-random listings (xorshift): shard contents are a function of (listing, k, n).
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 500) as usize;
            let n = 1 + (x >> 20) as usize % 64;
            let items: Vec<u64> = (0..len as u64).map(|i| i.wrapping_mul(x)).collect();
            let mut seen = std::collections::HashSet::new();
            for k in 0..n {
                let r = range(len, k, n);
                assert_eq!(r, range(len, k, n));
                for i in r {
                    assert!(seen.insert(i), "item {i} in two shards");
                }
            }
            assert_eq!(seen.len(), items.len());
        }
    }

    #[test]
    fn huge_lengths_do_not_overflow() {
        assert_eq!(
            range(usize::MAX, MAX_SHARDS - 1, MAX_SHARDS).end,
            usize::MAX
        );
    }

    #[test]
    fn manifest_names_round_trip() {
        let out = Path::new("/out");
        assert_eq!(manifest_path(out, None), Path::new("/out/manifest.json"));
        let s = Shard {
            index: 2,
            count: 12,
            source: ShardSource::Slurm,
        };
        let p = manifest_path(out, Some(&s));
        assert_eq!(p, Path::new("/out/manifests/shard-00002-of-00012.json"));
        assert_eq!(
            parse_manifest_name(p.file_name().unwrap().to_str().unwrap()),
            Some((2, 12))
        );
        assert_eq!(parse_manifest_name("shard-2-of-12.json"), None);
        assert_eq!(parse_manifest_name("shard-00002-of-00012.json.tmp"), None);
    }

    #[test]
    fn only_this_shards_temporary_files_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let mine = d.path().join("sub/a.hdf5");
        std::fs::create_dir_all(mine.parent().unwrap()).unwrap();
        let names = [
            "sub/.a.hdf5.tmp-12",
            "sub/.b.hdf5.tmp-13",
            "sub/a.hdf5",
            "sub/.a.hdf5.tmp-x",
        ];
        for n in names {
            std::fs::write(d.path().join(n), b"x").unwrap();
        }
        crate::output::remove_stale_temps_of([mine.clone()]);
        let left: Vec<bool> = names.iter().map(|n| d.path().join(n).exists()).collect();
        assert_eq!(left, [false, true, true, true]);
    }

    #[test]
    fn shard_serialises_as_the_manifest_expects() {
        let s = Shard {
            index: 1,
            count: 3,
            source: ShardSource::AwsBatch,
        };
        let v = serde_json::to_value(s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"index": 1, "count": 3, "source": "aws_batch"})
        );
    }
}
