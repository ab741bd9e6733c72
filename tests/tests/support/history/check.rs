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
    /// When the store applied it.
    at: Instant,
    /// The write, if it counts as one (returned, or seeded): index into `acks`.
    ack: Option<usize>,
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

/// The writes a rule considers.
#[derive(Clone, Copy)]
enum Writes {
    All,
    /// Seeded rows and this instance's writes.
    Own(usize),
    /// All but those another instance made while partitioned from Redis.
    Unpartitioned(usize),
}

impl Writes {
    fn counts(self, ack: &Ack) -> bool {
        match self {
            Writes::All => true,
            Writes::Own(i) => ack.instance.is_none_or(|w| w == i),
            Writes::Unpartitioned(i) => !ack.partitioned || ack.instance == Some(i),
        }
    }
}

struct IdHistory {
    /// By version.
    states: Vec<State>,
    acks: Vec<Ack>,
}

/// What a read says about one customer: `aspect` of a state must equal `expected` (the
/// version it returned; whether the customer exists, has the address looked up, or is
/// listed).
struct Claim<'c> {
    id: String,
    aspect: Aspect<'c>,
    expected: u64,
}

/// What a claim is about, of a state (its row and version).
type Aspect<'c> = Box<dyn Fn(&Option<Customer>, u64) -> u64 + 'c>;

impl Claim<'_> {
    fn holds(&self, s: &State) -> bool {
        (self.aspect)(&s.row, s.version) == self.expected
    }
    /// Whether the write of state `k` changed the aspect.
    fn changed_by(&self, states: &[State], k: usize) -> bool {
        let before = match k {
            0 => (self.aspect)(&None, 0),
            _ => (self.aspect)(&states[k - 1].row, states[k - 1].version),
        };
        before != (self.aspect)(&states[k].row, states[k].version)
    }
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
    pub fn read<'h>(&self, h: &'h History<'_>) -> &'h Op {
        &h.ops[self.read]
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
            let ack = ack.map(|ack| {
                entry.acks.push(ack);
                entry.acks.len() - 1
            });
            entry.states.push(State {
                version: applied.version,
                row: applied.row.clone(),
                op,
                at: applied.at,
                ack,
            });
        }
        for entry in ids.values_mut() {
            entry.states.sort_by_key(|s| s.version);
        }
        Checker {
            h,
            bounds,
            ids,
            versions,
        }
    }

    /// Whether the read at `r` is stale on `claim` against `writes`. The write it must
    /// reflect is the latest (by version) of those writes that returned before it started and
    /// changed what the claim is about (a rename changes a customer's version, not whether it
    /// has an address): then no state from that write on, among those begun before the read
    /// ended, may contradict it.
    fn judge(
        &self,
        history: &IdHistory,
        writes: Writes,
        r: usize,
        claim: &Claim<'_>,
    ) -> Option<Stale> {
        let read = &self.h.ops[r];
        let states = &history.states;
        let returned = |k: usize| {
            states[k]
                .ack
                .map(|a| &history.acks[a])
                .filter(|a| a.end < read.start && writes.counts(a))
        };
        // Applied after the read started: cannot have returned before it.
        let top = states.partition_point(|s| s.at < read.start);
        let must = (0..top)
            .rev()
            .find(|&k| returned(k).is_some() && claim.changed_by(states, k))?;
        let begun = |s: &State| s.op.is_none_or(|o| self.h.ops[o].start < read.end);
        let horizon = read.end + self.bounds.call;
        if states[must..]
            .iter()
            .take_while(|s| s.at <= horizon)
            .any(|s| begun(s) && claim.holds(s))
        {
            return None;
        }
        // The last state it agrees with was overtaken by the first write of those after it
        // that changed the claim and returned.
        let agreed = (0..must).rev().find(|&k| claim.holds(&states[k]));
        let from = agreed.map_or(0, |k| k + 1);
        let first = (from..=must)
            .filter(|&k| claim.changed_by(states, k))
            .filter_map(|k| returned(k).map(|_| states[k].ack.unwrap()))
            .min_by_key(|&a| history.acks[a].end)
            .unwrap_or(states[must].ack.unwrap());
        Some(Stale {
            latest: states[must].ack.unwrap(),
            first,
            window: read
                .start
                .saturating_duration_since(history.acks[first].end),
        })
    }

    /// What a read says about each customer it covers.
    fn claims(&self, r: usize) -> Vec<Claim<'_>> {
        let op = &self.h.ops[r];
        let version = |row: &Option<Customer>, v: u64| if row.is_some() { v } else { 0 };
        let same_version = |c: &Customer| Claim {
            id: c.id.clone(),
            aspect: Box::new(version),
            expected: c.version,
        };
        match (&op.call, &op.outcome) {
            (Call::ById(_), Outcome::One(Some(c))) | (Call::ByEmail(_), Outcome::One(Some(c))) => {
                vec![same_version(c)]
            }
            (Call::ById(id), Outcome::One(None)) => vec![Claim {
                id: id.clone(),
                aspect: Box::new(|row, _| u64::from(row.is_some())),
                expected: 0,
            }],
            (Call::ByEmail(address), Outcome::One(None)) => {
                let address = address.to_ascii_lowercase();
                vec![Claim {
                    id: email_owner(&address),
                    aspect: Box::new(move |row, _| {
                        u64::from(
                            row.as_ref()
                                .is_some_and(|c| c.email.to_ascii_lowercase() == address),
                        )
                    }),
                    expected: 0,
                }]
            }
            (Call::List { page, limit }, Outcome::Page(items)) => {
                let mut out: Vec<Claim<'_>> = items.iter().map(same_version).collect();
                let ids = &self.h.instances[op.instance].ids;
                if *page == 1 && *limit as usize >= ids.len() {
                    // The whole list: a customer missing from it must be unlisted.
                    for id in ids.iter().filter(|id| !items.iter().any(|c| &c.id == *id)) {
                        out.push(Claim {
                            id: id.clone(),
                            aspect: Box::new(|row, _| {
                                u64::from(row.as_ref().is_some_and(|c| c.active))
                            }),
                            expected: 0,
                        });
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
        for claim in self.claims(r) {
            let Some(history) = self.ids.get(&claim.id) else {
                continue;
            };
            let strict = match instance.kind {
                Kind::TwoTier => Writes::Own(op.instance),
                Kind::L2Only => Writes::Unpartitioned(op.instance),
                Kind::Local => Writes::All,
            };
            let finding = if let Some(stale) = self.judge(history, strict, r, &claim) {
                Finding {
                    rule: Rule::A,
                    read: r,
                    id: claim.id.clone(),
                    stale,
                    bound: Duration::ZERO,
                    faults: Vec::new(),
                }
            } else if let Some(stale) = self.judge(history, Writes::All, r, &claim) {
                self.classify(history, r, claim.id.clone(), stale)
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
                    None => out.push((
                        i,
                        format!("returned an error #{token} the store never made"),
                    )),
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
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
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
                && format!("{:?}", op.call).eq_ignore_ascii_case(&format!("{:?}", read.call))
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
                format!(
                    "(a) {} read {} older than its own write",
                    instance.label(),
                    f.id
                )
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
            writeln!(
                out,
                "    stale since: {}",
                self.ack_line(history, f.stale.first)
            )
            .unwrap();
        }
        if let Some(j) = self.joined(f) {
            writeln!(
                out,
                "    hint:      it ended with #{}, begun before the write returned, with the same \
                 result: it most likely joined that load",
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
        // The first few and those nearest the read.
        const SHOWN: usize = 14;
        let shown: Vec<usize> = if around.len() > SHOWN {
            let mut keep: Vec<usize> = around[..3].to_vec();
            keep.extend_from_slice(&around[around.len() - (SHOWN - 3)..]);
            keep
        } else {
            around.clone()
        };
        for (n, &i) in shown.iter().enumerate() {
            if around.len() > SHOWN && n == 3 {
                writeln!(out, "      ... {} more", around.len() - SHOWN).unwrap();
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
