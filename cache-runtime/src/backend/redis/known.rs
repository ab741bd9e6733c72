//! On a cluster, what the invalidation feed tells an instance about tag versions, so that an
//! L2 hit of an instance that follows a connected feed reads only the entry's node, not the
//! node of the namespace's tag versions (which every hit would otherwise reach: a hot tag
//! such as `customer.list` would make that node the bottleneck of every hit).
//!
//! Every invalidation takes the next number of the namespace's sequence (`seq`), and its
//! message on the feed says which (`gen:seq`, see `bus.rs`). A store on a cluster records, in
//! the entry, the sequence at which its tag versions were checked current (`checked_at`).
//! Heartbeats are published from the tags' node with the sequence there. Once one published at
//! `since` reaches a subscription, the feed is *anchored* at `(gen, since)`: every later
//! invalidation is published after it from the same node, so it reaches that subscription
//! too, or the next heartbeat finds a number missing and the feed starts over (`bus.rs`). An entry of generation `gen` checked at `checked_at >= since` is then
//! current exactly when no invalidation heard of one of its tags is numbered above the version
//! the entry carries for it: an invalidation of that tag after the check is numbered above
//! `checked_at`, so it was heard; one before the check left the tag at a version at least its
//! number, which the entry carries. Anything else (not anchored, another generation, an older
//! entry) asks the tags' node, as a read without a feed does.
//!
//! The answer is as fresh as the in-process tier's: both lag the feed by the same delivery
//! time, and both stop being used when the feed breaks (silence, a failing heartbeat, a moved
//! generation). An instance's own invalidations are heard at once, before its call returns.

use std::collections::HashMap;
use std::sync::Mutex;

/// Generations this instance saw the namespace leave, remembered at most.
const LEFT: usize = 8;

/// Heard invalidations kept at most; beyond, the anchor moves up to the newest and they are
/// forgotten (entries checked before it then ask the tags' node).
const MAX_HEARD: usize = 100_000;

/// What the feed told this instance: see the module's documentation.
#[derive(Default)]
pub(super) struct KnownVersions(Mutex<State>);

#[derive(Default)]
struct State {
    /// `(gen, since)`: every invalidation of generation `gen` numbered above `since` is heard.
    /// `None`: not anchored (no feed, a broken one, or not yet confirmed by a heartbeat).
    anchor: Option<(u64, u64)>,
    /// The namespace's generation as far as this instance knows (`None`: it does not); what
    /// `heard` and `floor` belong to.
    generation: Option<u64>,
    /// Generations this instance saw the namespace leave (a clear, a failover): a heartbeat
    /// or a message of one of them was published before the move, and tells nothing.
    left: std::collections::VecDeque<u64>,
    /// The highest number heard for each tag invalidated in `generation`.
    heard: HashMap<String, u64>,
    /// No anchor in `generation` starts below this: invalidations up to it were forgotten.
    floor: u64,
}

impl State {
    /// The namespace is in `generation` now: what was heard of the one before is forgotten,
    /// and that one is left behind.
    fn move_to(&mut self, generation: Option<u64>) {
        if let Some(old) = self.generation.filter(|old| Some(*old) != generation) {
            if self.left.len() == LEFT {
                self.left.pop_front();
            }
            self.left.push_back(old);
        }
        self.anchor = None;
        self.generation = generation;
        self.heard.clear();
        self.floor = 0;
    }

    fn was_left(&self, generation: u64) -> bool {
        self.left.contains(&generation)
    }
}

impl KnownVersions {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The feed may have missed invalidations (it broke, reconnected, lost messages, heard an
    /// invalidation without a position): every read asks the tags' node until a heartbeat
    /// anchors it again.
    pub(super) fn unanchor(&self) {
        self.state().anchor = None;
    }

    /// The namespace moved to `generation` (a clear, a failover; `None`: unknown): nothing
    /// heard of the generation before applies, and nothing of it anchors again. When the
    /// namespace was in `generation` already (a failing heartbeat recovered), the feed only
    /// stops vouching: what was heard, this instance's own invalidations included, stays.
    pub(super) fn moved_to(&self, generation: Option<u64>) {
        let mut state = self.state();
        if generation.is_some() && state.generation == generation {
            state.anchor = None;
        } else {
            state.move_to(generation);
        }
    }

    /// Whether this instance saw the namespace leave `generation`.
    pub(super) fn left_behind(&self, generation: u64) -> bool {
        self.state().was_left(generation)
    }

    /// Whether a heartbeat anchored the feed (and nothing unanchored it since).
    pub(super) fn is_anchored(&self) -> bool {
        self.state().anchor.is_some()
    }

    /// A heartbeat published at `seq` of `generation` on the tags' node reached a subscription
    /// that will hear every later invalidation (or notice that it did not): anchors there,
    /// unless already anchored in that generation, or the heartbeat is of another generation
    /// than the one this instance knows.
    pub(super) fn anchor(&self, generation: u64, seq: u64) {
        let mut state = self.state();
        if state.was_left(generation) || state.anchor.is_some_and(|(g, _)| g == generation) {
            return;
        }
        if state.generation != Some(generation) {
            // A move this instance did not see (its feed was away): the heartbeat tells it.
            state.move_to(Some(generation));
        }
        let since = seq.max(state.floor);
        state.anchor = Some((generation, since));
    }

    /// Invalidation number `seq` of generation `generation` bumped `tags` (heard on the feed,
    /// or made by this instance).
    pub(super) fn heard<'t>(
        &self,
        generation: u64,
        seq: u64,
        tags: impl IntoIterator<Item = &'t str>,
    ) {
        let mut state = self.state();
        if state.was_left(generation) {
            return; // published before a move: it outdates nothing current
        }
        if state.generation != Some(generation) {
            // The namespace moved to another generation (a failover, a clear): whatever
            // anchored the old one says nothing about this one.
            state.move_to(Some(generation));
        }
        for tag in tags {
            let number = state.heard.entry(tag.to_owned()).or_insert(seq);
            *number = (*number).max(seq);
        }
        if state.heard.len() > MAX_HEARD {
            let newest = state.heard.values().copied().max().unwrap_or(0);
            state.floor = state.floor.max(newest);
            state.anchor = state.anchor.map(|(g, since)| (g, since.max(newest)));
            state.heard.clear();
        }
    }

    /// Whether an entry of `generation`, checked current at `checked_at`, whose tags carry
    /// `tags` (name, version), is current as far as the feed tells; `false` when it cannot
    /// tell (then the tags' node must be asked).
    pub(super) fn vouches_for<'t>(
        &self,
        generation: u64,
        checked_at: u64,
        tags: impl IntoIterator<Item = (&'t str, u64)>,
    ) -> bool {
        let state = self.state();
        let Some((anchored, since)) = state.anchor else {
            return false;
        };
        anchored == generation
            && checked_at >= since
            && tags
                .into_iter()
                .all(|(tag, version)| state.heard.get(tag).is_none_or(|&heard| heard <= version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_anchored_feed_vouches_and_only_for_entries_checked_since() {
        let known = KnownVersions::default();
        assert!(!known.vouches_for(1, 10, [("a", 3)]), "not anchored");
        known.anchor(1, 10);
        assert!(known.vouches_for(1, 10, [("a", 3)]));
        assert!(known.vouches_for(1, 12, []));
        assert!(
            !known.vouches_for(1, 9, [("a", 3)]),
            "checked before the anchor"
        );
        assert!(!known.vouches_for(2, 10, [("a", 3)]), "another generation");
        known.unanchor();
        assert!(!known.vouches_for(1, 10, [("a", 3)]));
    }

    #[test]
    fn a_heard_invalidation_outdates_the_versions_below_it() {
        let known = KnownVersions::default();
        known.anchor(1, 10);
        known.heard(1, 11, ["a", "b"]);
        assert!(!known.vouches_for(1, 10, [("a", 3)]));
        assert!(!known.vouches_for(1, 10, [("c", 3), ("b", 10)]));
        assert!(known.vouches_for(1, 10, [("c", 3)]), "another tag");
        assert!(
            known.vouches_for(1, 11, [("a", 11)]),
            "stamped after the invalidation"
        );
        known.heard(1, 12, ["a"]);
        known.heard(1, 11, ["a"]); // late, out of order
        assert!(!known.vouches_for(1, 12, [("a", 11)]));
        assert!(known.vouches_for(1, 12, [("a", 12)]));
    }

    #[test]
    fn anchoring_again_keeps_what_was_heard_in_the_generation() {
        let known = KnownVersions::default();
        // A message can arrive before the heartbeat that anchors the feed.
        known.heard(1, 11, ["a"]);
        known.anchor(1, 10);
        assert!(!known.vouches_for(1, 10, [("a", 3)]));
        // A broken feed anchors anew, later, and keeps what it heard.
        known.unanchor();
        known.anchor(1, 20);
        assert!(!known.vouches_for(1, 15, [("b", 3)]), "checked before it");
        assert!(!known.vouches_for(1, 20, [("a", 3)]));
        assert!(
            known.vouches_for(1, 30, [("a", 11)]),
            "heard at 11, checked at 30 with the version it left"
        );
        // Heartbeats of an anchored feed do not move the anchor.
        known.anchor(1, 40);
        assert!(known.vouches_for(1, 20, [("b", 3)]));
    }

    #[test]
    fn a_message_of_another_generation_unanchors() {
        let known = KnownVersions::default();
        known.anchor(1, 10);
        known.heard(2, 1, ["a"]);
        assert!(!known.vouches_for(1, 10, []));
        assert!(
            !known.vouches_for(2, 10, []),
            "not anchored in generation 2 yet"
        );
        known.anchor(2, 1);
        assert!(!known.vouches_for(2, 1, [("a", 0)]));
        assert!(known.vouches_for(2, 1, [("a", 1)]));
    }

    #[test]
    fn a_move_to_the_generation_already_known_keeps_what_was_heard() {
        let known = KnownVersions::default();
        known.anchor(2, 0);
        known.heard(2, 1, ["t"]); // this instance's own invalidation
        known.moved_to(Some(2)); // the echo of the clear into 2, heard after
        assert!(!known.is_anchored());
        known.anchor(2, 0);
        assert!(
            !known.vouches_for(2, 0, [("t", 0)]),
            "its own invalidation still counts"
        );
    }

    #[test]
    fn a_message_of_a_generation_left_behind_is_ignored_and_an_unseen_move_is_learned() {
        let known = KnownVersions::default();
        known.anchor(1, 10);
        known.moved_to(Some(2));
        known.anchor(2, 0);
        known.heard(1, 11, ["t"]); // a zombie primary's late invalidation
        assert!(known.vouches_for(2, 0, [("t", 0)]));
        // The feed was away while the namespace moved on to 3: a heartbeat of 3 tells.
        known.unanchor();
        known.anchor(3, 4);
        assert!(known.vouches_for(3, 4, []));
        assert!(!known.vouches_for(2, 4, []));
        known.anchor(2, 9); // and 2 is left behind now
        assert!(known.vouches_for(3, 4, []));
    }

    #[test]
    fn a_heartbeat_of_a_generation_left_behind_anchors_nothing() {
        let known = KnownVersions::default();
        known.anchor(1, 10);
        // This instance cleared the namespace (or saw its tags' node fail over) into
        // generation 2; a heartbeat published in generation 1 arrives after.
        known.moved_to(Some(2));
        known.anchor(1, 10);
        assert!(!known.vouches_for(1, 10, []));
        assert!(!known.is_anchored());
        known.anchor(2, 0);
        assert!(known.vouches_for(2, 0, []));
        // A generation nobody announced: the first heartbeat tells it.
        known.moved_to(None);
        known.anchor(3, 5);
        assert!(known.vouches_for(3, 5, []));
    }

    #[test]
    fn too_many_heard_moves_the_anchor_up_and_no_later_anchor_goes_below() {
        let known = KnownVersions::default();
        known.anchor(1, 0);
        for i in 0..=MAX_HEARD as u64 {
            known.heard(1, i + 1, [format!("t{i}").as_str()]);
        }
        let newest = MAX_HEARD as u64 + 1;
        assert!(
            !known.vouches_for(1, newest - 1, []),
            "checked before the new anchor"
        );
        assert!(known.vouches_for(1, newest, [("t0", 0)]));
        // Anchored anew by a heartbeat published before the forgotten invalidations.
        known.unanchor();
        known.anchor(1, 5);
        assert!(!known.vouches_for(1, 5, [("t0", 0)]));
        assert!(known.vouches_for(1, newest, [("t0", 0)]));
    }
}
