//! Tensors that depend only on the input's shape (Swin's window layouts and shift masks, the
//! deformable attention's per-level constants, reference points, position embeddings): built once
//! per shape on the model's device and kept, so that a forward of a shape seen before does no host
//! work and no upload for them. Only shape-derived values are kept, never anything computed from
//! weights, so converting or reloading weights cannot leave a stale entry.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

/// Shapes kept per cache: a run sees one input shape, or a few (the last, smaller batch; a second
/// image size). The least recently used shape goes first.
pub const CAPACITY: usize = 4;

thread_local! {
    /// Whether caches answer from what they hold, for forwards on this thread (on unless a
    /// benchmark or test turns it off to time or compare the rebuilding path).
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Turns shape caches on or off for forwards run on this thread (off: each forward rebuilds, as
/// without a cache, and nothing is kept).
pub fn set_enabled(on: bool) {
    ENABLED.with(|e| e.set(on));
}

pub fn enabled() -> bool {
    ENABLED.with(Cell::get)
}

/// A cache key: the level sizes `(H_l, W_l)` of an input, its dtype and device.
pub type LevelsKey = (Vec<(i64, i64)>, Kind, Device);

/// A small map from a shape key to the tensors built for it.
#[derive(Debug)]
pub struct ShapeCache<K> {
    entries: Mutex<Vec<(K, Vec<Tensor>)>>,
    builds: AtomicUsize,
}

impl<K> Default for ShapeCache<K> {
    fn default() -> Self {
        ShapeCache {
            entries: Mutex::new(Vec::new()),
            builds: AtomicUsize::new(0),
        }
    }
}

fn shallow(v: &[Tensor]) -> Vec<Tensor> {
    v.iter().map(Tensor::shallow_clone).collect()
}

impl<K: PartialEq> ShapeCache<K> {
    /// The tensors for `key`: those held, or `build()`'s (then held, unless caches are off).
    pub fn get_or_build(&self, key: K, build: impl FnOnce() -> Vec<Tensor>) -> Vec<Tensor> {
        if !enabled() {
            self.builds.fetch_add(1, Ordering::Relaxed);
            return build();
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = entries.iter().position(|(k, _)| *k == key) {
            // Most recently used last.
            let hit = entries.remove(i);
            let out = shallow(&hit.1);
            entries.push(hit);
            return out;
        }
        let built = build();
        self.builds.fetch_add(1, Ordering::Relaxed);
        if entries.len() >= CAPACITY {
            entries.remove(0);
        }
        entries.push((key, shallow(&built)));
        built
    }

    /// How many times this cache has built (for tests: a repeated shape builds nothing).
    pub fn builds(&self) -> usize {
        self.builds.load(Ordering::Relaxed)
    }

    /// Shapes held now.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_is_built_once_and_the_oldest_goes_first() {
        let c: ShapeCache<i64> = ShapeCache::default();
        let make = |k: i64| move || vec![Tensor::full([2], k, (Kind::Int64, Device::Cpu))];
        let a = c.get_or_build(1, make(1));
        let b = c.get_or_build(1, make(99));
        assert_eq!(c.builds(), 1);
        assert!(a[0].equal(&b[0]), "the held tensors come back");
        for k in 2..=(CAPACITY as i64) {
            c.get_or_build(k, make(k));
        }
        // 1 was used after 2..; touching 1 again keeps it, so the next new key evicts 2.
        c.get_or_build(1, make(99));
        c.get_or_build(100, make(100));
        assert_eq!(c.len(), CAPACITY);
        let builds = c.builds();
        c.get_or_build(1, make(99));
        assert_eq!(c.builds(), builds, "1 is still held");
        c.get_or_build(2, make(2));
        assert_eq!(c.builds(), builds + 1, "2 was evicted");
    }
}
