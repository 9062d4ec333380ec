//! numpy's default `np.argsort` for float64 (`kind='quicksort'`: numpy 1.23's introsort in
//! `npysort/quicksort.cpp` and `npysort_heapsort.h`), reproduced step by step because the order it
//! leaves equal values in is part of the SegmentMeIfYouCan curve (see [`super::smiyc`]).
//!
//! The algorithm: median-of-three quicksort that pushes the larger part on a stack, insertion sort
//! for parts of at most 16 elements, and heapsort for a part popped once the depth budget
//! `2·floor(log2 n)` is spent. It is not stable: equal values end up in an order fixed by the input.
//! Newer numpy versions on AVX-512 (1.25+) or AVX2 (2.x) machines sort with SIMD code and may order
//! ties differently.

/// Parts longer than this many elements (plus one) are partitioned; shorter ones insertion-sorted.
const SMALL_QUICKSORT: usize = 15;

/// numpy's `<` for floats: NaN sorts after every number.
fn less(a: f64, b: f64) -> bool {
    a < b || (b.is_nan() && !a.is_nan())
}

/// Indices that sort `v` ascending, in exactly the order `np.argsort(v)` returns them.
pub fn argsort(v: &[f64]) -> Vec<usize> {
    let n = v.len();
    let mut t: Vec<usize> = (0..n).collect();
    if n < 2 {
        return t;
    }
    let key = |t: &[usize], i: usize| v[t[i]];
    // Parts still to sort, with the depth budget left when they were pushed.
    let mut stack: Vec<(usize, usize, i32)> = Vec::new();
    let (mut pl, mut pr) = (0usize, n - 1);
    let mut cdepth = 2 * (usize::BITS - 1 - n.leading_zeros()) as i32;
    loop {
        if cdepth < 0 {
            heapsort(v, &mut t[pl..=pr]);
        } else {
            while pr - pl > SMALL_QUICKSORT {
                // Median of three into t[pl] <= t[pm] <= t[pr]; the pivot is parked at pr - 1.
                let pm = pl + ((pr - pl) >> 1);
                if less(key(&t, pm), key(&t, pl)) {
                    t.swap(pm, pl);
                }
                if less(key(&t, pr), key(&t, pm)) {
                    t.swap(pr, pm);
                }
                if less(key(&t, pm), key(&t, pl)) {
                    t.swap(pm, pl);
                }
                let vp = key(&t, pm);
                let (mut pi, mut pj) = (pl, pr - 1);
                t.swap(pm, pj);
                loop {
                    pi += 1;
                    while less(key(&t, pi), vp) {
                        pi += 1;
                    }
                    pj -= 1;
                    while less(vp, key(&t, pj)) {
                        pj -= 1;
                    }
                    if pi >= pj {
                        break;
                    }
                    t.swap(pi, pj);
                }
                t.swap(pi, pr - 1);
                // The larger part waits on the stack; the smaller one is sorted next.
                cdepth -= 1;
                if pi - pl < pr - pi {
                    stack.push((pi + 1, pr, cdepth));
                    pr = pi - 1;
                } else {
                    stack.push((pl, pi - 1, cdepth));
                    pl = pi + 1;
                }
            }
            for pi in pl + 1..=pr {
                let vi = t[pi];
                let vp = v[vi];
                let mut pj = pi;
                while pj > pl && less(vp, v[t[pj - 1]]) {
                    t[pj] = t[pj - 1];
                    pj -= 1;
                }
                t[pj] = vi;
            }
        }
        match stack.pop() {
            Some((l, r, d)) => (pl, pr, cdepth) = (l, r, d),
            None => break,
        }
    }
    t
}

/// numpy's `aheapsort_` on one part (1-based heap indices as in the original).
fn heapsort(v: &[f64], a: &mut [usize]) {
    let mut n = a.len();
    let sift = |a: &mut [usize], mut i: usize, tmp: usize, n: usize| {
        let mut j = 2 * i;
        while j <= n {
            if j < n && less(v[a[j - 1]], v[a[j]]) {
                j += 1;
            }
            if less(v[tmp], v[a[j - 1]]) {
                a[i - 1] = a[j - 1];
                i = j;
                j += j;
            } else {
                break;
            }
        }
        a[i - 1] = tmp;
    };
    for l in (1..=n >> 1).rev() {
        let tmp = a[l - 1];
        sift(a, l, tmp, n);
    }
    while n > 1 {
        let tmp = a[n - 1];
        a[n - 1] = a[0];
        n -= 1;
        sift(a, 1, tmp, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_and_keeps_every_index() {
        let v: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 37) as f64 / 4.0).collect();
        let t = argsort(&v);
        assert!(t.windows(2).all(|w| v[w[0]] <= v[w[1]]));
        let mut seen = t.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn heapsort_sorts() {
        let v: Vec<f64> = (0..300).map(|i| ((i * 31) % 17) as f64).collect();
        let mut t: Vec<usize> = (0..300).collect();
        heapsort(&v, &mut t);
        assert!(t.windows(2).all(|w| v[w[0]] <= v[w[1]]));
    }

    /// `np.argsort` of the arrays in `tests/fixtures/smiyc/argsort.json`
    /// (`scripts/make_smiyc_fixtures.py`): the same permutation, ties included.
    #[test]
    fn matches_numpy_argsort_on_fixtures() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/smiyc/argsort.json");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let arrays = doc["arrays"].as_array().unwrap();
        assert!(arrays.len() >= 10);
        for (k, a) in arrays.iter().enumerate() {
            let v: Vec<f64> = a["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let want: Vec<usize> = a["argsort"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(argsort(&v), want, "array {k} ({} values)", v.len());
        }
    }
}
