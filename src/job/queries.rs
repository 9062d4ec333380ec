//! The anomaly query file: the YAML ranking `maskomaly discover-queries` writes and a job includes
//! with `method.anomaly_queries_file`, read at every job load.

use super::Job;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which IoU the ranking used (see `eval::discover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IouVariant {
    Reference,
    Corrected,
}

/// One query's overlap statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryScore {
    pub query: i64,
    /// Mean IoU over frames (variant as in [`Ranking::iou`]); `null` for NaN.
    pub iou: Option<f64>,
    /// Σ |M ∩ A| over frames.
    pub intersection: u64,
    /// Σ |M \ A| over frames.
    pub outside: u64,
    /// `outside / (intersection + outside)` (the reference's `tp`); `null` when the mask is empty.
    pub outside_fraction: Option<f64>,
}

/// The result of `eval::discover::discover`, also the YAML file format ([`QueriesFile`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ranking {
    pub iou: IouVariant,
    pub threshold: f32,
    pub frames: usize,
    /// The first `select` queries of `ranking`.
    pub selected: Vec<i64>,
    /// Every query, best first.
    pub ranking: Vec<QueryScore>,
}

/// The file `method.anomaly_queries_file` names.
pub type QueriesFile = Ranking;

#[derive(Debug, thiserror::Error)]
pub enum QueriesFileError {
    #[error("cannot read anomaly query file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("anomaly query file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A ranking as the YAML text of a query file, with a header comment saying what it is. The
/// caller writes it atomically: a cut-off file could still parse, as a shorter ranking.
pub fn ranking_text(ranking: &Ranking) -> Result<String, serde_saphyr::ser::Error> {
    let body = serde_saphyr::to_string(ranking)?;
    Ok(format!(
        "# Mask queries ranked by mean {:?} IoU with the anomaly labels over {} frame(s), masks > {}.\n\
         # Use with `method.anomaly_queries_file`; `selected` is used unless `method.anomaly_queries_top` is set.\n{body}",
        ranking.iou, ranking.frames, ranking.threshold
    ))
}

pub fn read_ranking(path: &Path) -> Result<Ranking, QueriesFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| QueriesFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_saphyr::from_str(&text).map_err(|e| QueriesFileError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Replaces `method.anomaly_queries` by the queries of `method.anomaly_queries_file` (a path
/// relative to the job file's folder): its first `method.anomaly_queries_top` ranked queries (NaN
/// scores skipped) when that is set, else its `selected` list. No file: the job is left as it is.
pub fn resolve_anomaly_queries(job: &mut Job, job_file: &Path) -> Result<(), QueriesFileError> {
    let Some(file) = job.method.anomaly_queries_file.clone() else {
        return Ok(());
    };
    let path = if file.is_absolute() {
        file
    } else {
        job_file.parent().unwrap_or(Path::new(".")).join(file)
    };
    let ranking = read_ranking(&path)?;
    let queries: Vec<i64> = match job.method.anomaly_queries_top {
        Some(n) => ranking
            .ranking
            .iter()
            .filter(|s| s.iou.is_some())
            .take(n)
            .map(|s| s.query)
            .collect(),
        None => ranking.selected.clone(),
    };
    if queries.is_empty() {
        return Err(QueriesFileError::Invalid {
            path,
            message: "selects no query".into(),
        });
    }
    if let Some(q) = queries.iter().find(|&&q| q < 0) {
        return Err(QueriesFileError::Invalid {
            path,
            message: format!("query index {q} is negative"),
        });
    }
    job.method.anomaly_queries = queries;
    Ok(())
}
