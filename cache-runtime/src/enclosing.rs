//! The load a cached call is made in. A body that reads data and hands it to another cached
//! method (a list's page filling the per-item entries through a batch method) passes on data
//! read at the start of its own load: the inner load is judged from that start, as if it had
//! begun then, so that an invalidation in between keeps the data it was given out of the
//! cache.
//!
//! Each load runs its body [`within`] its start; a load finds the start of the load it is
//! nested in (of the same cache) with [`enclosing`].

use std::future::Future;

use crate::tiers::Stamp;

/// Where a load began: the invalidation log's position and, when it stamped the shared tier,
/// that backend's watermark and generation then.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoadStart {
    /// The cache whose log `position` is of.
    pub(crate) cache: u64,
    pub(crate) position: u64,
    /// The shared tier's `(watermark, generation)`, when the load stamped it.
    pub(crate) shared: Option<(Option<u64>, u64)>,
}

tokio::task_local! {
    static ENCLOSING: LoadStart;
}

impl LoadStart {
    /// The start of a load that began at log `position` of `cache` with `stamp`.
    pub(crate) fn of(cache: u64, position: u64, stamp: &Stamp) -> LoadStart {
        LoadStart {
            cache,
            position,
            shared: stamp
                .shared
                .as_ref()
                .map(|_| (stamp.watermark, stamp.generation)),
        }
    }

    /// Judges a nested load's `stamp`, taken now, from this earlier start: its shared part is
    /// dropped (the value is not written to the shared tier) when one of its tags was
    /// invalidated since, or the backend's generation changed; its watermark becomes this
    /// one, against which the tags known after the load are judged.
    pub(crate) fn judge(&self, stamp: &mut Stamp) {
        let Some((watermark, generation)) = self.shared else {
            return;
        };
        let Some(pairs) = &stamp.shared else {
            return;
        };
        let overtaken = stamp.generation != generation
            || watermark.is_some_and(|mark| pairs.iter().any(|(_, version)| *version > mark));
        if overtaken {
            stamp.shared = None;
        }
        stamp.watermark = watermark;
    }
}

/// The start of the load of `cache` the current task is running the body of, if any.
pub(crate) fn enclosing(cache: u64) -> Option<LoadStart> {
    ENCLOSING
        .try_with(|start| *start)
        .ok()
        .filter(|start| start.cache == cache)
}

/// Runs `body` as the body of the load that began at `start`.
pub(crate) async fn within<F: Future>(start: LoadStart, body: F) -> F::Output {
    ENCLOSING.scope(start, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(versions: &[u64], watermark: u64, generation: u64) -> Stamp {
        Stamp {
            local: None,
            shared: Some(
                versions
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("t{i}"), *v))
                    .collect(),
            ),
            watermark: Some(watermark),
            generation,
        }
    }

    #[test]
    fn a_nested_stamp_is_judged_from_the_enclosing_start() {
        let outer = LoadStart {
            cache: 1,
            position: 10,
            shared: Some((Some(100), 7)),
        };
        let mut untouched = stamp(&[40, 100], 120, 7);
        outer.judge(&mut untouched);
        assert!(untouched.shared.is_some(), "no tag invalidated since 100");
        assert_eq!(
            untouched.watermark,
            Some(100),
            "result tags judged from 100"
        );

        let mut overtaken = stamp(&[40, 101], 120, 7);
        outer.judge(&mut overtaken);
        assert!(overtaken.shared.is_none(), "t1 was invalidated after 100");

        let mut other_generation = stamp(&[1], 5, 8);
        outer.judge(&mut other_generation);
        assert!(other_generation.shared.is_none());

        let in_process = LoadStart {
            shared: None,
            ..outer
        };
        let mut kept = stamp(&[500], 600, 7);
        in_process.judge(&mut kept);
        assert_eq!((kept.shared.is_some(), kept.watermark), (true, Some(600)));
    }
}
