//! The frames a report shows, chosen while the frames stream past: bounded heaps, so neither the
//! memory the report needs nor the page grows with the number of frames (every frame stays in
//! `per_frame.csv`).

use super::THRESHOLDS;
use crate::eval::FrameResult;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

/// Frames per gallery list.
pub const GALLERY_FRAMES: usize = 3;
/// Rows of each end of the page's frame table (lowest and highest AP); with at most twice as many
/// frames the table shows them all.
pub const TABLE_ROWS: usize = 25;

/// An `f64` ordered by `total_cmp`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key(pub f64);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The `k` smallest items pushed, by their order.
#[derive(Debug, Clone)]
pub struct Smallest<T: Ord> {
    k: usize,
    heap: BinaryHeap<T>,
}

impl<T: Ord> Smallest<T> {
    pub fn new(k: usize) -> Smallest<T> {
        Smallest {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    pub fn push(&mut self, item: T) {
        if self.heap.len() < self.k {
            self.heap.push(item);
        } else if self.heap.peek().is_some_and(|top| item < *top) {
            self.heap.pop();
            self.heap.push(item);
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Ascending.
    pub fn sorted(&self) -> Vec<&T> {
        let mut v: Vec<&T> = self.heap.iter().collect();
        v.sort();
        v
    }
}

/// A frame kept for the page: its row and its false positives at every threshold.
#[derive(Debug)]
pub struct Picked {
    pub frame: FrameResult,
    /// Inlier pixels counted as anomaly at each threshold `i / THRESHOLDS`.
    pub inliers_above: Vec<u64>,
}

impl Picked {
    /// Share of the frame's non-ignored pixels that are inliers at or above threshold index `t`.
    pub fn fp_area(&self, t: usize) -> f64 {
        let f = &self.frame;
        let kept = (f.width * f.height) as u64 - f.ignored;
        let fp = self.inliers_above.get(t).copied().unwrap_or(0);
        if kept == 0 {
            0.0
        } else {
            fp as f64 / kept as f64
        }
    }

    /// The frame's AP when it has anomaly pixels (AP is undefined without them).
    pub fn ap(&self) -> Option<f64> {
        frame_ap(&self.frame)
    }
}

/// A frame's AP when it has anomaly pixels and the AP is a number.
pub fn frame_ap(f: &FrameResult) -> Option<f64> {
    f.metrics
        .filter(|_| f.positives > 0)
        .map(|m| m.ap)
        .filter(|ap| !ap.is_nan())
}

/// A heap entry: ordered by key, then by frame index (the earlier frame first).
#[derive(Debug, Clone)]
pub struct Entry<K: Ord> {
    pub key: K,
    pub frame: Arc<Picked>,
}
impl<K: Ord> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K: Ord> Eq for Entry<K> {}
impl<K: Ord> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then(self.frame.frame.index.cmp(&other.frame.frame.index))
    }
}

/// The frames one score's page shows, chosen as they stream past.
#[derive(Debug, Clone)]
pub struct FramePicks {
    seen: usize,
    lowest_ap: Smallest<Entry<Key>>,
    /// Per threshold index: the frames with the largest false-positive area.
    most_fp: Vec<Smallest<Entry<Reverse<Key>>>>,
    table_low: Smallest<Entry<Key>>,
    table_high: Smallest<Entry<Reverse<Key>>>,
    /// Every frame, while there are at most `2 × TABLE_ROWS`.
    first: Vec<Arc<Picked>>,
}

impl Default for FramePicks {
    fn default() -> Self {
        FramePicks::new()
    }
}

impl FramePicks {
    pub fn new() -> FramePicks {
        FramePicks {
            seen: 0,
            lowest_ap: Smallest::new(GALLERY_FRAMES),
            most_fp: (0..THRESHOLDS)
                .map(|_| Smallest::new(GALLERY_FRAMES))
                .collect(),
            table_low: Smallest::new(TABLE_ROWS),
            table_high: Smallest::new(TABLE_ROWS),
            first: Vec::new(),
        }
    }

    /// Offers one frame to every list.
    pub fn push(&mut self, frame: &FrameResult, inliers_above: Vec<u64>) {
        let p = Arc::new(Picked {
            frame: frame.clone(),
            inliers_above,
        });
        self.seen += 1;
        if self.seen <= 2 * TABLE_ROWS {
            self.first.push(p.clone());
        } else {
            self.first = Vec::new();
        }
        if let Some(ap) = p.ap() {
            let entry = |key| Entry {
                key,
                frame: p.clone(),
            };
            self.lowest_ap.push(entry(Key(ap)));
            self.table_low.push(entry(Key(ap)));
            self.table_high.push(Entry {
                key: Reverse(Key(ap)),
                frame: p.clone(),
            });
        }
        for (t, heap) in self.most_fp.iter_mut().enumerate() {
            let area = p.fp_area(t);
            if area > 0.0 {
                heap.push(Entry {
                    key: Reverse(Key(area)),
                    frame: p.clone(),
                });
            }
        }
    }

    /// Frames offered.
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// The gallery's lists: lowest AP first, and largest false-positive area at threshold index `t`.
    pub fn gallery(&self, t: usize) -> (Vec<Arc<Picked>>, Vec<Arc<Picked>>) {
        let fp = self
            .most_fp
            .get(t)
            .map(|h| h.sorted().into_iter().map(|e| e.frame.clone()).collect())
            .unwrap_or_default();
        (
            self.lowest_ap
                .sorted()
                .into_iter()
                .map(|e| e.frame.clone())
                .collect(),
            fp,
        )
    }

    /// The frame table's rows: every frame when there are few, else the lowest- and highest-AP
    /// frames, by ascending AP; and whether that is every frame.
    pub fn table(&self) -> (Vec<Arc<Picked>>, bool) {
        if self.seen <= 2 * TABLE_ROWS {
            return (self.first.clone(), true);
        }
        let mut rows: Vec<Arc<Picked>> = self
            .table_low
            .sorted()
            .into_iter()
            .map(|e| e.frame.clone())
            .collect();
        let mut high: Vec<Arc<Picked>> = self
            .table_high
            .sorted()
            .into_iter()
            .map(|e| e.frame.clone())
            .filter(|p| !rows.iter().any(|r| r.frame.index == p.frame.index))
            .collect();
        high.reverse();
        rows.extend(high);
        (rows, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::CurveMetrics;
    use std::path::PathBuf;

    fn frame(index: usize, ap: f64, fp: u64) -> (FrameResult, Vec<u64>) {
        let m = CurveMetrics {
            ap,
            auroc: 0.5,
            fpr95: 0.5,
            fpr_at_tpr90_seed: 0.5,
            aupr_seed: 0.5,
            positives: 1,
            negatives: 99,
            thresholds: 2,
        };
        (
            FrameResult {
                index,
                stem: format!("f{index}"),
                prediction: PathBuf::from(format!("f{index}.npy")),
                width: 10,
                height: 10,
                positives: 1,
                negatives: 99,
                ignored: 0,
                metrics: Some(m),
                best_f1_threshold: 0.5,
                best_f1: 0.5,
            },
            vec![fp; THRESHOLDS],
        )
    }

    #[test]
    fn smallest_keeps_the_k_smallest() {
        let mut s = Smallest::new(3);
        for v in [5, 1, 9, 3, 7, 0, 3] {
            s.push(v);
        }
        assert_eq!(s.sorted(), [&0, &1, &3]);
        assert_eq!(s.len(), 3);
    }

    /// A hundred thousand frames: the lists and the table stay at their bounds and hold the
    /// frames a full sort would pick.
    #[test]
    fn picks_are_bounded_and_exact() {
        let mut p = FramePicks::new();
        let n = 100_000usize;
        // A permutation of 0..n, so that APs are distinct and arrive in no order.
        let ap_of = |i: usize| ((i * 7919) % n) as f64 / n as f64;
        for i in 0..n {
            let (f, above) = frame(i, ap_of(i), (i % 1000) as u64);
            p.push(&f, above);
        }
        let (low, fp) = p.gallery(50);
        assert_eq!(low.len(), GALLERY_FRAMES);
        let want_low: Vec<usize> = {
            let mut all: Vec<usize> = (0..n).collect();
            all.sort_by(|a, b| ap_of(*a).total_cmp(&ap_of(*b)));
            all[..GALLERY_FRAMES].to_vec()
        };
        assert_eq!(
            low.iter().map(|x| x.frame.index).collect::<Vec<_>>(),
            want_low
        );
        // fp = i % 1000: the largest, 999, first at frames 999, 1999, 2999.
        assert_eq!(
            fp.iter().map(|x| x.frame.index).collect::<Vec<_>>(),
            [999, 1999, 2999]
        );
        let (rows, all) = p.table();
        assert!(!all);
        assert_eq!(rows.len(), 2 * TABLE_ROWS);
        let aps: Vec<f64> = rows.iter().map(|r| r.ap().unwrap()).collect();
        assert_eq!(aps[0], 0.0);
        assert_eq!(*aps.last().unwrap(), (n - 1) as f64 / n as f64);
        assert!(aps.windows(2).all(|w| w[0] <= w[1]));
        // Only what the lists hold is alive: each heap's entries, at most.
        let alive: usize = p.most_fp.iter().map(|h| h.len()).sum::<usize>()
            + p.lowest_ap.len()
            + p.table_low.len()
            + p.table_high.len()
            + p.first.len();
        assert!(alive <= THRESHOLDS * GALLERY_FRAMES + GALLERY_FRAMES + 2 * TABLE_ROWS);
    }

    #[test]
    fn few_frames_are_all_shown_in_order() {
        let mut p = FramePicks::new();
        for i in 0..6 {
            let (f, above) = frame(i, 1.0 - i as f64 / 10.0, 0);
            p.push(&f, above);
        }
        let (rows, all) = p.table();
        assert!(all);
        assert_eq!(
            rows.iter().map(|r| r.frame.index).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5]
        );
        assert!(p.gallery(10).1.is_empty(), "no false positive, no frame");
    }
}
