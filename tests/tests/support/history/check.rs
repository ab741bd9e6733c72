//! The checker: rules (a)–(d) of `history.rs` over a recorded history, and the report.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::faults::{Fault, FaultKind};
use super::record::{dur, ms, Call, Instance, Kind, Op, Outcome};
use super::store::{email_owner, Applied, Customer};

/// The bounds the rules are checked against (constants of `history.rs`).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub healthy_window: Duration,
    pub heartbeat: Duration,
    pub fault_slack: Duration,
    pub partition_grace: Duration,
    pub call: Duration,
    pub converge: Duration,
}

impl Bounds {
    /// The bound on a stale read's window when feed-breaking faults of total length `faults`
    /// overlap it.
    pub fn fault_window(&self, faults: Duration) -> Duration {
        self.heartbeat * 3 + faults + self.fault_slack
    }
}

pub struct History<'a> {
    pub seed: u64,
    pub t0: Instant,
    pub seeded_at: Instant,
    pub instances: &'a [Instance],
    pub ops: &'a [Op],
    pub applied: &'a [Applied],
    pub injected: &'a [(u64, Instant)],
    pub faults: &'a [Fault],
}

/// The convergence sweeps after healing: when each started, and what each got wrong.
pub struct Convergence {
    pub healed_at: Instant,
    pub sweeps: Vec<(Instant, Vec<String>)>,
}

struct State {
    version: u64,
    row: Option<Customer>,
    op: Option<usize>,
}

/// A write that returned (or a seeded row): it dates every read that starts after `end`.
struct Ack {
    version: u64,
    op: Option<usize>,
    instance: Option<usize>,
    start: Instant,
    end: Instant,
    /// Its instance's proxy was faulted around it: Redis may not have heard of it.
    partitioned: bool,
}

/// Some of an id's acks, by end, with the latest version among each prefix.
#[derive(Default)]
struct Track {
    order: Vec<usize>,
    ends: Vec<Instant>,
    best: Vec<usize>,
}

impl Track {
    fn new(acks: &[Ack], keep: impl Fn(&Ack) -> bool) -> Track {
        let mut order: Vec<usize> = (0..acks.len()).filter(|&i| keep(&acks[i])).collect();
        order.sort_by_key(|&i| acks[i].end);
        let mut track = Track::default();
        for i in order {
            let best = match track.best.last() {
                Some(&b) if acks[b].version >= acks[i].version => b,
                _ => i,
            };
            track.order.push(i);
            track.ends.push(acks[i].end);
            track.best.push(best);
        }
        track
    }

    /// The latest write (by version) of the track that returned before `t`.
    fn latest_before(&self, t: Instant) -> Option<usize> {
        let n = self.ends.partition_point(|e| *e < t);
        (n > 0).then(|| self.best[n - 1])
    }
}

struct IdHistory {
    states: Vec<State>,
    acks: Vec<Ack>,
    all: Track,
    unpartitioned: Track,
    own: Vec<Track>,
}

/// A stale result: `latest` is the latest write it misses, `first` the first write that made
/// the returned state outdated; the window runs from `first`'s return to the read's start.
#[derive(Clone, Copy)]
struct Stale {
    latest: usize,
    first: usize,
    window: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rule {
    /// (a): on the writer, or an instance without L1.
    A,
    /// (b) while the feed was healthy.
    BHealthy,
    /// (b) with feed-breaking faults overlapping the window.
    BFault,
}

pub struct Finding {
    pub rule: Rule,
    read: usize,
    id: String,
    stale: Stale,
    bound: Duration,
    faults: Vec<usize>,
}

impl Finding {
    pub fn window(&self) -> Duration {
        self.stale.window
    }
    pub fn read_start(&self, h: &History<'_>) -> Instant {
        h.ops[self.read].start
    }
    pub fn beyond(&self) -> bool {
        self.rule == Rule::A || self.stale.window > self.bound
    }
}

pub struct Verdict {
    pub findings: Vec<Finding>,
    /// (c): the op and why.
    pub calls: Vec<(usize, String)>,
    /// (d): why not, if it did not converge in time; and when it did.
    pub convergence: Result<Duration, String>,
    pub reads_checked: usize,
}

impl Verdict {
    pub fn failed(&self) -> bool {
        self.findings.iter().any(Finding::beyond)
            || !self.calls.is_empty()
            || self.convergence.is_err()
    }
}

pub struct Checker<'a> {
    h: &'a History<'a>,
    bounds: Bounds,
    ids: BTreeMap<String, IdHistory>,
    /// The version each write op applied.
    versions: HashMap<usize, u64>,
}

impl<'a> Checker<'a> {
    pub fn new(h: &'a History<'a>, bounds: Bounds) -> Checker<'a> {
        let index: HashMap<u64, usize> =
            h.ops.iter().enumerate().map(|(i, op)| (op.id, i)).collect();
        let mut ids: BTreeMap<String, IdHistory> = BTreeMap::new();
        let mut versions = HashMap::new();
        for applied in h.applied {
            let op = applied.op.and_then(|id| index.get(&id).copied());
            if let Some(op) = op {
                versions.insert(op, applied.version);
            }
            let entry = ids.entry(applied.id.clone()).or_insert_with(|| IdHistory {
                states: Vec::new(),
                acks: Vec::new(),
                all: Track::default(),
                unpartitioned: Track::default(),
                own: Vec::new(),
            });
            entry.states.push(State {
                version: applied.version,
                row: applied.row.clone(),
                op,
            });
            let ack = match op {
                None if applied.op.is_none() => Some(Ack {
                    version: applied.version,
                    op: None,
                    instance: None,
                    start: h.seeded_at,
                    end: h.seeded_at,
                    partitioned: false,
                }),
                None => None,
                Some(i) => {
                    let op = &h.ops[i];
                    matches!(op.outcome, Outcome::Done { .. }).then(|| Ack {
                        version: applied.version,
                        op: Some(i),
                        instance: Some(op.instance),
                        start: op.start,
                        end: op.end,
                        partitioned: h.faults.iter().any(|f| {
                            f.kind == FaultKind::Proxy
                                && f.instance == Some(op.instance)
                                && f.start <= op.end
                                && op.start <= f.end + bounds.partition_grace
                        }),
                    })
                }
            };
            entry.acks.extend(ack);
        }
        for entry in ids.values_mut() {
            entry.states.sort_by_key(|s| s.version);
            entry.all = Track::new(&entry.acks, |_| true);
            entry.unpartitioned = Track::new(&entry.acks, |a| !a.partitioned);
            entry.own = (0..h.instances.len())
                .map(|i| Track::new(&entry.acks, |a| a.instance.is_none_or(|w| w == i)))
                .collect();
        }
        Checker {
            h,
            bounds,
            ids,
            versions,
        }
    }

    /// Whether the read at `r` is stale against the writes of `track`: no state it may have
    /// seen (the latest write of the track that returned before it started, or any later one
    /// begun before it ended) is `consistent` with what it returned.
    fn judge(
        &self,
        history: &IdHistory,
        track: &Track,
        r: usize,
        consistent: &dyn Fn(&State) -> bool,
    ) -> Option<Stale> {
        let read = &self.h.ops[r];
        let latest = track.latest_before(read.start)?;
        let floor = history.acks[latest].version;
        let from = history.states.partition_point(|s| s.version < floor);
        let fine = history.states[from..].iter().any(|s| {
            s.op.is_none_or(|o| self.h.ops[o].start < read.end) && consistent(s)
        });
        if fine {
            return None;
        }
        // The state it returned (or the last one it is consistent with) was overtaken by the
        // first write above it to return.
        let seen = history.states[..from]
            .iter()
            .rev()
            .find(|s| consistent(s))
            .map_or(0, |s| s.version);
        let n = track.ends.partition_point(|e| *e < read.start);
        let first = track.order[..n]
            .iter()
            .copied()
            .find(|&i| history.acks[i].version > seen)
            .unwrap_or(latest);
        Some(Stale {
            latest,
            first,
            window: read.start.saturating_duration_since(history.acks[first].end),
        })
    }

    /// The entities a read covers, each with what is consistent with its result.
    fn entities(&self, r: usize) -> Vec<(String, Box<dyn Fn(&State) -> bool + '_>)> {
        let op = &self.h.ops[r];
        let same_version = |c: &Customer| {
            let v = c.version;
            Box::new(move |s: &State| s.row.is_some() && s.version == v) as Box<dyn Fn(&State) -> bool>
        };
        match (&op.call, &op.outcome) {
            (Call::ById(id), Outcome::One(Some(c))) => vec![(id.clone(), same_version(c))],
            (Call::ById(id), Outcome::One(None)) => {
                vec![(id.clone(), Box::new(|s: &State| s.row.is_none()))]
            }
            (Call::ByEmail(_), Outcome::One(Some(c))) => {
                vec![(c.id.clone(), same_version(c))]
            }
            (Call::ByEmail(address), Outcome::One(None)) => {
                let address = address.to_ascii_lowercase();
                vec![(
                    email_owner(&address),
                    Box::new(move |s: &State| {
                        s.row
                            .as_ref()
                            .is_none_or(|c| c.email.to_ascii_lowercase() != address)
                    }),
                )]
            }
            (Call::List { page, limit }, Outcome::Page(items)) => {
                let mut out: Vec<(String, Box<dyn Fn(&State) -> bool + '_>)> = items
                    .iter()
                    .map(|c| (c.id.clone(), same_version(c)))
                    .collect();
                let ids = &self.h.instances[op.instance].ids;
                if *page == 1 && *limit as usize >= ids.len() {
                    // The whole list: a customer missing from it must be unlisted.
                    for id in ids.iter().filter(|id| !items.iter().any(|c| &c.id == *id)) {
                        out.push((
                            id.clone(),
                            Box::new(|s: &State| s.row.as_ref().is_none_or(|c| !c.active)),
                        ));
                    }
                }
                out
            }
            _ => Vec::new(),
        }
    }

    fn read_finding(&self, r: usize) -> Option<Finding> {
        let op = &self.h.ops[r];
        let instance = &self.h.instances[op.instance];
        let mut worst: Option<Finding> = None;
        for (id, consistent) in self.entities(r) {
            let Some(history) = self.ids.get(&id) else {
                continue;
            };
            let strict = match instance.kind {
                Kind::TwoTier => &history.own[op.instance],
                Kind::L2Only => &history.unpartitioned,
                Kind::Local => &history.all,
            };
            let finding = if let Some(stale) = self.judge(history, strict, r, &*consistent) {
                Finding {
                    rule: Rule::A,
                    read: r,
                    id: id.clone(),
                    stale,
                    bound: Duration::ZERO,
                    faults: Vec::new(),
                }
            } else if let Some(stale) = self.judge(history, &history.all, r, &*consistent) {
                self.classify(history, r, id.clone(), stale)
            } else {
                continue;
            };
            let rank = |f: &Finding| (f.rule == Rule::A, f.beyond(), f.stale.window);
            if worst.as_ref().is_none_or(|w| rank(&finding) > rank(w)) {
                worst = Some(finding);
            }
        }
        worst
    }

    /// (b): healthy, or overlapped by feed-breaking faults of the server, the reader's proxy
    /// or the writer's.
    fn classify(&self, history: &IdHistory, r: usize, id: String, stale: Stale) -> Finding {
        let read = &self.h.ops[r];
        let first = &history.acks[stale.first];
        let faults: Vec<usize> = self
            .h
            .faults
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.kind.breaks_feed()
                    && f.start <= read.start
                    && first.start <= f.end
                    && f.instance
                        .is_none_or(|i| i == read.instance || Some(i) == first.instance)
            })
            .map(|(i, _)| i)
            .collect();
        let (rule, bound) = if faults.is_empty() {
            (Rule::BHealthy, self.bounds.healthy_window)
        } else {
            let total = faults.iter().map(|&i| self.h.faults[i].duration()).sum();
            (Rule::BFault, self.bounds.fault_window(total))
        };
        Finding {
            rule,
            read: r,
            id,
            stale,
            bound,
            faults,
        }
    }

    /// (c): every call returned within the bound, and every error it returned is a failure
    /// the store injected while the call ran.
    fn calls(&self) -> Vec<(usize, String)> {
        let injected: HashMap<u64, Instant> = self.h.injected.iter().copied().collect();
        let mut out = Vec::new();
        for (i, op) in self.h.ops.iter().enumerate() {
            match &op.outcome {
                Outcome::TimedOut => out.push((
                    i,
                    format!("did not return within {}", dur(self.bounds.call)),
                )),
                Outcome::Panicked(p) => out.push((i, format!("panicked: {p}"))),
                Outcome::StoreFailed(token) => match injected.get(token) {
                    Some(at) if op.start <= *at && *at <= op.end => {}
                    Some(at) => out.push((
                        i,
                        format!(
                            "returned store error #{token}, injected at {}, outside the call",
                            ms(self.h.t0, *at)
                        ),
                    )),
                    None => out.push((i, format!("returned an error #{token} the store never made"))),
                },
                _ => {}
            }
        }
        out
    }

    pub fn verdict(&self, convergence: &Convergence) -> Verdict {
        let mut findings = Vec::new();
        let mut reads_checked = 0;
        for (r, op) in self.h.ops.iter().enumerate() {
            if op.call.is_write() {
                continue;
            }
            reads_checked += 1;
            findings.extend(self.read_finding(r));
        }
        Verdict {
            findings,
            calls: self.calls(),
            convergence: self.convergence(convergence),
            reads_checked,
        }
    }

    /// (d): every sweep that starts `converge` after healing or later is all correct; the
    /// time to converge is when the run of correct sweeps to the end began.
    fn convergence(&self, c: &Convergence) -> Result<Duration, String> {
        let deadline = c.healed_at + self.bounds.converge;
        if let Some((at, wrong)) = c
            .sweeps
            .iter()
            .find(|(at, wrong)| *at >= deadline && !wrong.is_empty())
        {
            let shown: Vec<&String> = wrong.iter().take(6).collect();
            return Err(format!(
                "a sweep {} after healing still read {} wrong result(s): {}",
                dur(at.duration_since(c.healed_at)),
                wrong.len(),
                shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; ")
            ));
        }
        if c.sweeps.iter().all(|(at, _)| *at < deadline) {
            return Err("no sweep ran after the convergence deadline".into());
        }
        let converged = c
            .sweeps
            .iter()
            .rposition(|(_, wrong)| !wrong.is_empty())
            .map_or(c.healed_at, |last_wrong| c.sweeps[last_wrong + 1].0);
        Ok(converged.saturating_duration_since(c.healed_at))
    }

    /// A read on the same instance with the same call and result that began before the
    /// missed write returned and ended with this one: this read most likely joined its load.
    pub fn joined(&self, f: &Finding) -> Option<usize> {
        let read = &self.h.ops[f.read];
        let write_end = self.ids[&f.id].acks[f.stale.latest].end;
        let same = |a: &Outcome, b: &Outcome| match (a, b) {
            (Outcome::One(x), Outcome::One(y)) => x == y,
            (Outcome::Page(x), Outcome::Page(y)) => x == y,
            _ => false,
        };
        let near = Duration::from_millis(1);
        self.h.ops.iter().position(|op| {
            op.instance == read.instance
                && op.start < write_end
                && op.call.kind() == read.call.kind()
                && format!("{:?}", op.call).to_ascii_lowercase()
                    == format!("{:?}", read.call).to_ascii_lowercase()
                && same(&op.outcome, &read.outcome)
                && (op.end.max(read.end) - op.end.min(read.end)) < near
        })
    }

    fn line(&self, i: usize) -> String {
        self.h.ops[i].line(self.h.t0, self.h.instances, self.versions.get(&i).copied())
    }

    fn ack_line(&self, history: &IdHistory, a: usize) -> String {
        let ack = &history.acks[a];
        match ack.op {
            Some(op) => self.line(op),
            None => format!("v{} seeded before the run", ack.version),
        }
    }

    /// The stale read, the writes it misses, the calls on that id around them, and the
    /// faults in between.
    pub fn explain(&self, f: &Finding) -> String {
        let h = self.h;
        let history = &self.ids[&f.id];
        let read = &h.ops[f.read];
        let latest = &history.acks[f.stale.latest];
        let first = &history.acks[f.stale.first];
        let instance = &h.instances[read.instance];
        let mut out = String::new();
        let what = match f.rule {
            Rule::A if instance.kind == Kind::TwoTier => {
                format!("(a) {} read {} older than its own write", instance.label(), f.id)
            }
            Rule::A => format!("(a) {} read {} older than a write", instance.label(), f.id),
            Rule::BHealthy => format!(
                "(b) {} read {} stale {} after the write returned (bound {}, feed healthy)",
                instance.label(),
                f.id,
                dur(f.stale.window),
                dur(f.bound)
            ),
            Rule::BFault => format!(
                "(b) {} read {} stale {} after the write returned (bound {} with the faults below)",
                instance.label(),
                f.id,
                dur(f.stale.window),
                dur(f.bound)
            ),
        };
        writeln!(out, "{what}").unwrap();
        writeln!(out, "    read:      {}", self.line(f.read)).unwrap();
        writeln!(
            out,
            "    misses:    {} (returned {} before the read started)",
            self.ack_line(history, f.stale.latest),
            dur(read.start.saturating_duration_since(latest.end))
        )
        .unwrap();
        if f.stale.first != f.stale.latest {
            writeln!(out, "    stale since: {}", self.ack_line(history, f.stale.first)).unwrap();
        }
        if let Some(j) = self.joined(f) {
            writeln!(
                out,
                "    hint:      it ended with #{}, begun before the write returned, with the same result: it most likely joined that load",
                h.ops[j].id
            )
            .unwrap();
        }
        let from = first.start.min(latest.start) - Duration::from_millis(200);
        let to = read.end + Duration::from_millis(20);
        let around: Vec<usize> = h
            .ops
            .iter()
            .enumerate()
            .filter(|(i, op)| {
                *i == f.read
                    || (op.end >= from
                        && op.start <= to
                        && !matches!(op.call, Call::List { .. })
                        && op.call.touches(&f.id))
            })
            .map(|(i, _)| i)
            .collect();
        writeln!(
            out,
            "    calls on {} from {} to {} ({}):",
            f.id,
            ms(h.t0, from),
            ms(h.t0, to),
            around.len()
        )
        .unwrap();
        let shown: Vec<usize> = if around.len() > 16 {
            let mut keep: Vec<usize> = around[..4].to_vec();
            keep.extend_from_slice(&around[around.len() - 12..]);
            keep
        } else {
            around.clone()
        };
        for (n, &i) in shown.iter().enumerate() {
            if around.len() > 16 && n == 4 {
                writeln!(out, "      ... {} more", around.len() - 16).unwrap();
            }
            let mark = if i == f.read { ">" } else { " " };
            writeln!(out, "     {mark}{}", self.line(i)).unwrap();
        }
        for fault in h
            .faults
            .iter()
            .filter(|fault| fault.end >= from && fault.start <= to)
        {
            writeln!(out, "    fault:     {}", self.fault_line(fault)).unwrap();
        }
        for &i in &f.faults {
            writeln!(out, "    bound from: {}", self.fault_line(&h.faults[i])).unwrap();
        }
        out
    }

    pub fn fault_line(&self, f: &Fault) -> String {
        let on = match f.instance {
            Some(i) => format!(" on {}'s proxy", self.h.instances[i].name),
            None => String::new(),
        };
        format!(
            "{}..{} {}{on}: {}",
            ms(self.h.t0, f.start),
            ms(self.h.t0, f.end),
            f.kind.name(),
            f.detail
        )
    }

    pub fn call_line(&self, i: usize) -> String {
        self.line(i)
    }
}
