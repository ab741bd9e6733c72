//! The one name of each thing the cache can do for a call, shown by the HTTP API (`X-Cache`)
//! and by the console's walk-through.

use cache_runtime::{CallOutcome, Observed};

/// What the cache did for the first cached call among `observed`; `None` when none was made.
pub fn first_outcome(observed: &[Observed]) -> Option<CallOutcome> {
    observed.first().map(|o| o.outcome)
}

/// The name of `outcome`: `hit`, `stale`, `miss` or `bypass`.
pub fn outcome_name(outcome: CallOutcome) -> &'static str {
    match outcome {
        CallOutcome::Hit => "hit",
        CallOutcome::Stale => "stale",
        CallOutcome::Miss => "miss",
        CallOutcome::Bypass => "bypass",
    }
}

/// What `outcome` meant for the store, when that is not plain from its name.
pub fn outcome_meaning(outcome: CallOutcome) -> Option<&'static str> {
    match outcome {
        CallOutcome::Stale => Some("refreshing in the background"),
        CallOutcome::Miss => Some("loaded from the store"),
        CallOutcome::Hit | CallOutcome::Bypass => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_one_name() {
        let all = [
            CallOutcome::Hit,
            CallOutcome::Stale,
            CallOutcome::Miss,
            CallOutcome::Bypass,
        ];
        assert_eq!(all.map(outcome_name), ["hit", "stale", "miss", "bypass"]);
        assert_eq!(
            all.map(outcome_meaning),
            [
                None,
                Some("refreshing in the background"),
                Some("loaded from the store"),
                None
            ]
        );
    }
}
