//! How keys are ordered: by ring position, then by the key's bytes.
//!
//! Both engines key their entries by `position (8 bytes, big-endian) ‖ key`,
//! so a ring range is one or two contiguous runs, listed in position order
//! without touching keys outside it; range digests for anti-entropy can walk
//! the same runs. This module only plans the runs; engines iterate them.

use std::ops::Bound;

use mydht_ring::{Position, TokenRange};

/// The engine key of a user key.
pub(crate) fn engine_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&Position::of_key(key).0.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits an engine key into its position and user key.
pub(crate) fn split_engine_key(ekey: &[u8]) -> Option<(Position, &[u8])> {
    let (pos, key) = ekey.split_first_chunk::<8>()?;
    Some((Position(u64::from_be_bytes(*pos)), key))
}

/// A run of engine keys, in iteration order.
pub(crate) type Run = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The runs covering positions `lo..=hi`.
fn run(lo: u64, hi: u64) -> Run {
    let start = Bound::Included(lo.to_be_bytes().to_vec());
    let end = match hi.checked_add(1) {
        Some(next) => Bound::Excluded(next.to_be_bytes().to_vec()),
        None => Bound::Unbounded,
    };
    (start, end)
}

/// The runs of `range` (`(start, end]`, wrapping), in ring order from the
/// range's start, resuming strictly after `after` when given.
pub(crate) fn plan(range: TokenRange, after: Option<&[u8]>) -> Vec<Run> {
    let (s, e) = (range.start().0, range.end().0);
    // Inclusive position spans in ring order.
    let mut spans = Vec::with_capacity(2);
    let first = s.wrapping_add(1);
    if range.is_full() {
        if s == u64::MAX {
            spans.push((0, u64::MAX));
        } else {
            spans.push((first, u64::MAX));
            spans.push((0, s));
        }
    } else if s < e {
        spans.push((first, e));
    } else {
        if s != u64::MAX {
            spans.push((first, u64::MAX));
        }
        spans.push((0, e));
    }
    let Some(after) = after else {
        return spans.into_iter().map(|(lo, hi)| run(lo, hi)).collect();
    };
    let Some((pos, _)) = split_engine_key(after) else {
        return spans.into_iter().map(|(lo, hi)| run(lo, hi)).collect();
    };
    // Skip the spans before the cursor's and start the cursor's one after it;
    // a cursor outside the range ends the listing.
    match spans
        .iter()
        .position(|&(lo, hi)| lo <= pos.0 && pos.0 <= hi)
    {
        None => Vec::new(),
        Some(i) => spans[i..]
            .iter()
            .enumerate()
            .map(|(j, &(lo, hi))| {
                let (start, end) = run(lo, hi);
                if j == 0 {
                    (Bound::Excluded(after.to_vec()), end)
                } else {
                    (start, end)
                }
            })
            .collect(),
    }
}

/// The whole ring in plain position order, for key listings.
pub(crate) fn whole_ring() -> TokenRange {
    TokenRange::new(Position(u64::MAX), Position(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ek(pos: u64) -> Vec<u8> {
        let mut v = pos.to_be_bytes().to_vec();
        v.push(b'k');
        v
    }

    fn covers(runs: &[Run], pos: u64) -> bool {
        let k = ek(pos);
        runs.iter().any(|(lo, hi)| {
            let above = match lo {
                Bound::Included(b) => k >= *b,
                Bound::Excluded(b) => k > *b,
                Bound::Unbounded => true,
            };
            let below = match hi {
                Bound::Included(b) => k <= *b,
                Bound::Excluded(b) => k < *b,
                Bound::Unbounded => true,
            };
            above && below
        })
    }

    #[test]
    fn runs_cover_exactly_the_range() {
        let probes = [0, 1, 5, 9, 10, 11, u64::MAX - 1, u64::MAX];
        let ranges = [
            (5, 10),
            (10, 5),
            (u64::MAX, 3),
            (3, u64::MAX),
            (7, 7),
            (u64::MAX, u64::MAX),
        ];
        for (s, e) in ranges {
            let r = TokenRange::new(Position(s), Position(e));
            let runs = plan(r, None);
            for p in probes {
                assert_eq!(
                    covers(&runs, p),
                    r.contains(Position(p)),
                    "range ({s},{e}] pos {p}"
                );
            }
        }
    }

    #[test]
    fn wrapping_range_lists_from_its_start() {
        let runs = plan(TokenRange::new(Position(10), Position(5)), None);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].0, Bound::Included(11u64.to_be_bytes().to_vec()));
        assert_eq!(runs[1].0, Bound::Included(0u64.to_be_bytes().to_vec()));
    }

    #[test]
    fn cursor_resumes_in_its_run_and_outside_ends() {
        let r = TokenRange::new(Position(10), Position(5));
        let runs = plan(r, Some(&ek(2)));
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].0, Bound::Excluded(ek(2)));
        assert!(plan(r, Some(&ek(7))).is_empty());
    }
}
