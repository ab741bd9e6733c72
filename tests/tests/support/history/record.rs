//! What the history records: every call, with its start and end (monotonic), the instance, the
//! arguments and the result (each customer returned carries its version).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::store::{email_owner, Customer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// In-process tier in front of Redis, following the invalidation feed.
    TwoTier,
    /// Redis only (`in_process_tier(false)`).
    L2Only,
    /// `Cache::in_memory`, on ids of its own.
    Local,
}

#[derive(Clone, Debug)]
pub struct Instance {
    pub name: &'static str,
    pub kind: Kind,
    /// Whether its Redis traffic goes through a proxy of the test.
    pub proxied: bool,
    /// The ids it works on.
    pub ids: Vec<String>,
}

impl Instance {
    pub fn label(&self) -> String {
        let kind = match self.kind {
            Kind::TwoTier => "two-tier",
            Kind::L2Only => "L2-only",
            Kind::Local => "in-process",
        };
        let proxied = if self.proxied { ", proxied" } else { "" };
        format!("{} ({kind}{proxied})", self.name)
    }
}

#[derive(Clone, Debug)]
pub enum Call {
    ById(String),
    ByEmail(String),
    List {
        page: u32,
        limit: u32,
    },
    Save(Customer),
    ChangeEmail {
        customer: Customer,
        old: String,
    },
    Delete(Customer),
    /// A rename behind the cache's back, then `cache.invalidate_tags([customer.<id>,
    /// customer.list])`.
    AdminInvalidate(String),
    /// A rename behind the cache's back, then `cache.clear()`.
    AdminClear(String),
}

impl Call {
    pub fn kind(&self) -> &'static str {
        match self {
            Call::ById(_) => "find_by_id",
            Call::ByEmail(_) => "find_by_email",
            Call::List { .. } => "find_active",
            Call::Save(_) => "save",
            Call::ChangeEmail { .. } => "change_email",
            Call::Delete(_) => "delete",
            Call::AdminInvalidate(_) => "write+invalidate_tags",
            Call::AdminClear(_) => "write+clear",
        }
    }

    pub fn is_write(&self) -> bool {
        !matches!(self, Call::ById(_) | Call::ByEmail(_) | Call::List { .. })
    }

    /// Whether it reads or writes customer `id`.
    pub fn touches(&self, id: &str) -> bool {
        match self {
            Call::ById(x) | Call::AdminInvalidate(x) | Call::AdminClear(x) => x == id,
            Call::ByEmail(address) => email_owner(address) == id,
            Call::List { .. } => true,
            Call::Save(c) | Call::Delete(c) | Call::ChangeEmail { customer: c, .. } => c.id == id,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Outcome {
    One(Option<Customer>),
    Page(Vec<Customer>),
    /// A write returned `Ok` (for `write+invalidate_tags`: whatever the cache said, which is
    /// in `cache_error`).
    Done {
        cache_error: Option<String>,
    },
    /// The store's injected failure, by its token.
    StoreFailed(u64),
    /// `write+clear`: the store write went through, `clear()` returned this error.
    ClearFailed(String),
    TimedOut,
    Panicked(String),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub id: u64,
    pub instance: usize,
    pub call: Call,
    pub start: Instant,
    pub end: Instant,
    pub outcome: Outcome,
    /// Part of the convergence sweeps after the faults healed.
    pub sweep: bool,
}

pub fn ms(t0: Instant, t: Instant) -> String {
    if t >= t0 {
        format!("+{:.1}ms", t.duration_since(t0).as_secs_f64() * 1e3)
    } else {
        format!("-{:.1}ms", t0.duration_since(t).as_secs_f64() * 1e3)
    }
}

pub fn dur(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    }
}

pub fn customer(c: &Option<Customer>) -> String {
    match c {
        None => "none".into(),
        Some(c) => format!(
            "{} v{} {:?} {}{}",
            c.id,
            c.version,
            c.name,
            c.email,
            if c.active { "" } else { " inactive" }
        ),
    }
}

impl Op {
    /// One line: `#id +start..+end A find_by_id(s3) -> s3 v812 ...`; `version` is the version
    /// a write applied, when it did.
    pub fn line(&self, t0: Instant, instances: &[Instance], version: Option<u64>) -> String {
        let mut out = format!(
            "#{} {}..{} {} ",
            self.id,
            ms(t0, self.start),
            ms(t0, self.end),
            instances[self.instance].name
        );
        match &self.call {
            Call::ById(id) => write!(out, "find_by_id({id})"),
            Call::ByEmail(a) => write!(out, "find_by_email({a})"),
            Call::List { page, limit } => write!(out, "find_active({page}, {limit})"),
            Call::Save(c) => write!(
                out,
                "save({} {:?} {}{})",
                c.id,
                c.name,
                c.email,
                if c.active { "" } else { " inactive" }
            ),
            Call::ChangeEmail { customer, old } => {
                write!(
                    out,
                    "change_email({} {old} -> {})",
                    customer.id, customer.email
                )
            }
            Call::Delete(c) => write!(out, "delete({})", c.id),
            Call::AdminInvalidate(id) => {
                write!(out, "rename {id} behind the cache + invalidate_tags")
            }
            Call::AdminClear(id) => write!(out, "rename {id} behind the cache + clear()"),
        }
        .unwrap();
        out.push_str(" -> ");
        match &self.outcome {
            Outcome::One(c) => out.push_str(&customer(c)),
            Outcome::Page(page) => {
                let items: Vec<String> = page
                    .iter()
                    .map(|c| format!("{} v{}", c.id, c.version))
                    .collect();
                write!(out, "[{}]", items.join(", ")).unwrap();
            }
            Outcome::Done { cache_error } => {
                out.push_str("ok");
                if let Some(v) = version {
                    write!(out, ", wrote v{v}").unwrap();
                }
                if let Some(e) = cache_error {
                    write!(out, " (cache: {e})").unwrap();
                }
            }
            Outcome::StoreFailed(token) => write!(out, "store error #{token}").unwrap(),
            Outcome::ClearFailed(e) => {
                out.push_str("clear() failed");
                if let Some(v) = version {
                    write!(out, ", wrote v{v}").unwrap();
                }
                write!(out, ": {e}").unwrap();
            }
            Outcome::TimedOut => out.push_str("did not return"),
            Outcome::Panicked(p) => write!(out, "panicked: {p}").unwrap(),
        }
        if self.sweep {
            out.push_str(" [sweep]");
        }
        out
    }
}
