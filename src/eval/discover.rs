//! Finding the anomaly queries: which of the model's mask queries overlap the labelled anomalies
//! best (`jan-ackermann/Maskomaly: maskomaly/anomaly_overlap.py`).
//!
//! Per frame and query: the mask probability map is resized to the label size with OpenCV's
//! INTER_AREA (the padded border included, as the reference does), binarised with `> 0.9` (float32),
//! and compared with the anomaly label:
//!
//! * `I = |M ∩ A|`, `C = |M \ A|` (ignored pixels count as "not anomaly");
//! * [`IouVariant::Reference`]: `I / (|M| − ignore_count + |A| − I)` where `ignore_count` is the
//!   ignored-pixel count of the *whole image*, not of the mask: the denominator can shrink below the
//!   union or go negative, and `0/0` gives NaN;
//! * [`IouVariant::Corrected`]: `I / |(M ∪ A) \ ignore|`, the IoU on non-ignored pixels (0 when the
//!   union is empty).
//!
//! The per-query score is the mean over frames (a NaN frame makes the mean NaN, as `np.mean` does).
//! Queries are ranked by descending score, NaN last, ties by query index. NOTE(upstream): the
//! reference reverses numpy's `argsort`, which puts NaN scores *first* and orders ties arbitrarily;
//! it also computes `tp = ΣC / (ΣI + ΣC)`, the fraction of mask pixels outside the anomaly, kept here
//! as `outside_fraction`.
//!
//! The ranking is written as YAML ([`crate::job::queries::QueriesFile`]) that a job includes with
//! `method.anomaly_queries_file`.

use super::metrics::pairwise_sum_f64;
use crate::dataset::Label;
use crate::job::queries::{IouVariant, QueryScore, Ranking};
use tch::{Kind, Tensor};

/// Mask threshold of the reference (`T_MASK`).
pub const MASK_THRESHOLD: f32 = 0.9;
/// How many queries a ranking selects by default: the size of the published set [49, 31, 83, 32].
pub const DEFAULT_SELECTED: usize = 4;

#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    pub threshold: f32,
    pub iou: IouVariant,
    /// The masks are logits (apply the sigmoid first) rather than probabilities.
    pub logits: bool,
    /// How many of the best queries go into `selected`.
    pub select: usize,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            threshold: MASK_THRESHOLD,
            iou: IouVariant::Reference,
            logits: false,
            select: DEFAULT_SELECTED,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("frame {frame}: masks must be [Q, H, W] float, got {shape:?}")]
    Shape { frame: usize, shape: Vec<i64> },
    #[error("frame {frame}: {message}")]
    Tensor { frame: usize, message: String },
    #[error("frame {frame} has {got} queries, earlier frames {want}")]
    QueryCount {
        frame: usize,
        got: usize,
        want: usize,
    },
    #[error("frame {frame}: label buffers do not match its {width}×{height} size")]
    Label {
        frame: usize,
        width: usize,
        height: usize,
    },
    #[error("no frames to rank queries on")]
    NoFrames,
    #[error("frame {frame}: {message}")]
    Source { frame: usize, message: String },
}

/// Per-query overlap of one frame: (IoU, I, C). `masks` is `[Q, mh, mw]` probabilities, row-major.
pub fn frame_overlap(
    masks: &[f32],
    (q, mh, mw): (usize, usize, usize),
    label: &Label,
    threshold: f32,
    variant: IouVariant,
) -> Vec<(f64, u64, u64)> {
    let (w, h) = (label.width, label.height);
    let anomaly_count = label.anomaly.iter().filter(|&&a| a != 0).count() as f64;
    let ignore_count = label.ignore.iter().filter(|&&v| v != 0).count() as f64;
    (0..q)
        .map(|j| {
            let m =
                crate::resize::opencv_area(&masks[j * mh * mw..(j + 1) * mh * mw], mw, mh, w, h);
            let (mut inter, mut outside, mut outside_kept) = (0u64, 0u64, 0u64);
            for (i, &v) in m.iter().enumerate() {
                if v > threshold {
                    if label.anomaly[i] != 0 {
                        inter += 1;
                    } else {
                        outside += 1;
                        if label.ignore[i] == 0 {
                            outside_kept += 1;
                        }
                    }
                }
            }
            let i = inter as f64;
            let iou = match variant {
                IouVariant::Reference => {
                    i / ((inter + outside) as f64 - ignore_count + anomaly_count - i)
                }
                IouVariant::Corrected => {
                    let union = outside_kept as f64 + anomaly_count;
                    if union == 0.0 {
                        0.0
                    } else {
                        i / union
                    }
                }
            };
            (iou, inter, outside)
        })
        .collect()
}

/// Ranks queries over frames of `(masks [Q, H, W], label)`. The masks may be at any size (the
/// padded model input size in practice) and are resized to the label's; probabilities unless
/// `opts.logits`. The iterator's errors are passed through with the frame index.
pub fn discover<E: std::fmt::Display>(
    frames: impl Iterator<Item = Result<(Tensor, Label), E>>,
    opts: &DiscoverOptions,
) -> Result<Ranking, DiscoverError> {
    let mut per_frame_iou: Vec<Vec<f64>> = Vec::new();
    let mut inter: Vec<u64> = Vec::new();
    let mut outside: Vec<u64> = Vec::new();
    let mut n = 0usize;
    for (frame, item) in frames.enumerate() {
        let (masks, label) = item.map_err(|e| DiscoverError::Source {
            frame,
            message: e.to_string(),
        })?;
        let size = masks.size();
        if size.len() != 3 || size.iter().any(|&d| d <= 0) {
            return Err(DiscoverError::Shape { frame, shape: size });
        }
        let (q, mh, mw) = (size[0] as usize, size[1] as usize, size[2] as usize);
        if label.anomaly.len() != label.width * label.height
            || label.ignore.len() != label.anomaly.len()
        {
            return Err(DiscoverError::Label {
                frame,
                width: label.width,
                height: label.height,
            });
        }
        if n > 0 && q != inter.len() {
            return Err(DiscoverError::QueryCount {
                frame,
                got: q,
                want: inter.len(),
            });
        }
        let tensor_err = |e: tch::TchError| DiscoverError::Tensor {
            frame,
            message: e.to_string(),
        };
        let probs = masks.f_to_kind(Kind::Float).map_err(tensor_err)?;
        let probs = if opts.logits {
            probs.f_sigmoid().map_err(tensor_err)?
        } else {
            probs
        };
        let probs = probs
            .f_to_device(tch::Device::Cpu)
            .and_then(|t| t.f_contiguous())
            .map_err(tensor_err)?;
        let data: Vec<f32> = Vec::<f32>::try_from(probs.f_flatten(0, -1).map_err(tensor_err)?)
            .map_err(tensor_err)?;
        let overlap = frame_overlap(&data, (q, mh, mw), &label, opts.threshold, opts.iou);
        if n == 0 {
            per_frame_iou = vec![Vec::new(); q];
            inter = vec![0; q];
            outside = vec![0; q];
        }
        for (j, (iou, i, c)) in overlap.into_iter().enumerate() {
            per_frame_iou[j].push(iou);
            inter[j] += i;
            outside[j] += c;
        }
        n += 1;
    }
    if n == 0 {
        return Err(DiscoverError::NoFrames);
    }
    Ok(rank(per_frame_iou, &inter, &outside, opts))
}

fn rank(
    per_frame_iou: Vec<Vec<f64>>,
    inter: &[u64],
    outside: &[u64],
    opts: &DiscoverOptions,
) -> Ranking {
    let frames = per_frame_iou.first().map_or(0, Vec::len);
    let mut scores: Vec<(f64, QueryScore)> = per_frame_iou
        .iter()
        .enumerate()
        .map(|(j, v)| {
            let mean = pairwise_sum_f64(v) / v.len() as f64;
            let total = inter[j] + outside[j];
            (
                mean,
                QueryScore {
                    query: j as i64,
                    iou: (!mean.is_nan()).then_some(mean),
                    intersection: inter[j],
                    outside: outside[j],
                    outside_fraction: (total > 0).then(|| outside[j] as f64 / total as f64),
                },
            )
        })
        .collect();
    // Descending, NaN last; `sort_by` is stable, so ties keep the lower query index first.
    scores.sort_by(|a, b| match (a.0.is_nan(), b.0.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.0.total_cmp(&a.0),
    });
    let ranking: Vec<QueryScore> = scores.into_iter().map(|(_, s)| s).collect();
    let selected = ranking
        .iter()
        .filter(|s| s.iou.is_some())
        .take(opts.select)
        .map(|s| s.query)
        .collect();
    Ranking {
        iou: opts.iou,
        threshold: opts.threshold,
        frames,
        selected,
        ranking,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::queries::{ranking_text, read_ranking, resolve_anomaly_queries};
    use crate::job::Job;

    /// Label 8×4: anomaly in columns 2..4 of rows 1..3; ignore at (7, 0).
    fn label() -> Label {
        let (w, h) = (8, 4);
        let mut anomaly = vec![0u8; w * h];
        let mut ignore = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                anomaly[y * w + x] = ((1..3).contains(&y) && (2..4).contains(&x)) as u8;
                ignore[y * w + x] = (x == 7 && y == 0) as u8;
            }
        }
        Label {
            width: w,
            height: h,
            anomaly,
            ignore,
        }
    }

    /// Three queries at twice the label size: 0 covers the anomaly exactly, 1 covers the anomaly and
    /// the ignore column, 2 is elsewhere.
    fn masks(logit: bool) -> Tensor {
        let (q, h, w) = (3usize, 8usize, 16usize);
        let mut m = vec![0.05f32; q * h * w];
        for y in 0..h {
            for x in 0..w {
                let (ly, lx) = (y / 2, x / 2);
                let in_anomaly = (1..3).contains(&ly) && (2..4).contains(&lx);
                if in_anomaly {
                    m[y * w + x] = 0.99;
                    m[h * w + y * w + x] = 0.97;
                }
                if lx == 7 {
                    m[h * w + y * w + x] = 0.97;
                }
                if lx == 0 && ly == 0 {
                    m[2 * h * w + y * w + x] = 0.95;
                }
            }
        }
        let t = Tensor::from_slice(&m).view([q as i64, h as i64, w as i64]);
        if logit {
            t.logit(None)
        } else {
            t
        }
    }

    #[test]
    fn right_queries_rank_first_with_both_ious() {
        let frames = || (0..2).map(|_| Ok::<_, String>((masks(false), label())));
        let r = discover(
            frames(),
            &DiscoverOptions {
                select: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.frames, 2);
        let order: Vec<i64> = r.ranking.iter().map(|s| s.query).collect();
        assert_eq!(order, [0, 1, 2]);
        // Reference IoU of query 0: I = 4, |M| = 4, ignore_count = 1, |A| = 4 → 4 / 3: the global
        // ignore count pushes it above 1 (the quirk).
        assert_eq!(r.ranking[0].iou, Some(4.0 / 3.0));
        // Query 1 adds column 7 (4 pixels, one ignored): 4 / (8 − 1 + 4 − 4).
        assert_eq!(r.ranking[1].iou, Some(4.0 / 7.0));
        assert_eq!(r.ranking[2].iou, Some(0.0));
        assert_eq!(r.selected, [0, 1]);
        assert_eq!(r.ranking[1].outside, 8);
        assert_eq!(r.ranking[1].outside_fraction, Some(0.5));

        let c = discover(
            frames(),
            &DiscoverOptions {
                iou: IouVariant::Corrected,
                ..Default::default()
            },
        )
        .unwrap();
        let ious: Vec<Option<f64>> = c.ranking.iter().map(|s| s.iou).collect();
        // Corrected: the ignored pixel under query 1 is left out of the union: 4 / (3 + 4).
        assert_eq!(ious, [Some(1.0), Some(4.0 / 7.0), Some(0.0)]);
    }

    #[test]
    fn logits_are_passed_through_a_sigmoid() {
        let r = discover(
            std::iter::once(Ok::<_, String>((masks(true), label()))),
            &DiscoverOptions {
                logits: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.ranking[0].query, 0);
        assert_eq!(r.ranking[2].query, 2);
    }

    #[test]
    fn reference_iou_is_nan_for_empty_union() {
        // No anomaly, no ignore, empty mask → 0/0.
        let l = Label {
            width: 2,
            height: 1,
            anomaly: vec![0, 0],
            ignore: vec![0, 0],
        };
        let o = frame_overlap(&[0.0, 0.0], (1, 1, 2), &l, 0.9, IouVariant::Reference);
        assert!(o[0].0.is_nan());
        let o = frame_overlap(&[0.0, 0.0], (1, 1, 2), &l, 0.9, IouVariant::Corrected);
        assert_eq!(o[0].0, 0.0);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let t = Tensor::zeros([4, 4], (Kind::Float, tch::Device::Cpu));
        let err = discover(
            std::iter::once(Ok::<_, String>((t, label()))),
            &DiscoverOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, DiscoverError::Shape { frame: 0, .. }));
        let none = discover(
            std::iter::empty::<Result<(Tensor, Label), String>>(),
            &DiscoverOptions::default(),
        );
        assert!(matches!(none, Err(DiscoverError::NoFrames)));
    }

    #[test]
    fn ranking_file_round_trips_and_resolves_into_the_job() {
        let d = tempfile::tempdir().unwrap();
        let r = discover(
            std::iter::once(Ok::<_, String>((masks(false), label()))),
            &DiscoverOptions::default(),
        )
        .unwrap();
        std::fs::write(d.path().join("queries.yaml"), ranking_text(&r).unwrap()).unwrap();
        assert_eq!(read_ranking(&d.path().join("queries.yaml")).unwrap(), r);

        let job_file = d.path().join("job.yaml");
        let mut job =
            Job::from_yaml("method:\n  anomaly_queries_file: queries.yaml\n", &job_file).unwrap();
        resolve_anomaly_queries(&mut job, &job_file).unwrap();
        assert_eq!(job.method.anomaly_queries, [0, 1, 2]);
        job.method.anomaly_queries_top = Some(1);
        resolve_anomaly_queries(&mut job, &job_file).unwrap();
        assert_eq!(job.method.anomaly_queries, [0]);

        job.method.anomaly_queries_file = Some("missing.yaml".into());
        let err = resolve_anomaly_queries(&mut job, &job_file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.yaml"), "{err}");
    }
}
