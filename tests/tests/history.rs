//! A history checker for the distributed cache: several instances of an application share
//! one `redis-server` of the test's own while a seeded random workload reads and writes a
//! small set of customers and faults are injected; every call is recorded, then the history
//! is checked against four rules.
//!
//! # The system
//!
//! Instances A, B, C are two-tier (their own L1, Redis as L2, heartbeat [`HEARTBEAT`]); D is
//! L2-only (`in_process_tier(false)`); M is `Cache::in_memory`, on ids of its own (`m0`..),
//! in the same store. B, C and D reach Redis through a TCP proxy of the test. Each runs
//! [`TASKS_PER_INSTANCE`] tasks over [`IDS`] customers (`s0`..), through a repository annotated
//! as a user would (`find_by_id`, `find_by_email`, `find_active`, `save`, `change_email`,
//! `delete`), plus renames behind the cache's back followed by `cache.invalidate_tags` or
//! `cache.clear()`. Every store write takes a version from one global counter and the
//! customer carries it, so every value a read returns is dated. 2% of loads and 1% of writes
//! fail in the store.
//!
//! # Terms
//!
//! A *write* is a `save`, `change_email` or `delete` that returned `Ok` (whatever the cache
//! did: the method returned), a rename followed by `invalidate_tags` (the call returned, even
//! with the cache's error: the invalidation is kept and replayed), or a rename followed by a
//! `clear()` that returned `Ok`. It *returned* when the call returned. A read *starts* when
//! the call is made. A read R *claims* something about each customer X it covers (below);
//! W(R, X) is the latest (highest-version) write of X, among the writes considered, that
//! returned before R started and changed what R claims (every write changes a customer's
//! version; a rename does not change whether it has an address). The states R may see of X
//! are W's and those of every later write of X begun before R ended. R is *stale* on X when
//! none of those states agrees with its claim:
//! - `find_by_id(X)` returning X at version v: X is at version v; returning `None`: X is
//!   deleted.
//! - `find_by_email(a)`, with `a` one of X's addresses (addresses are `<id>-<n>@example.test`,
//!   never reused by another id, looked up in random case): returning X at version v, X is
//!   at version v; returning `None`, X is deleted or has another address.
//! - `find_active(page, limit)`: every customer X on the page at version v is at version v;
//!   for the whole list (page 1, limit ≥ ids), every customer missing from it is deleted or
//!   inactive.
//!
//! The *window* of a stale read is the time from the return of the first write that
//! overtook its claim (the first, among the writes considered that returned before the read,
//! to change the claim after the last state agreeing with it) to the read's start.
//!
//! # Rules
//!
//! - **(a)** On the instance that wrote, and on every instance reading without L1 (D, and M
//!   on its own ids), no read is stale against the writes considered. For A, B, C the writes
//!   considered are their own (and the seeded rows); for D all writes but those made by
//!   another instance whose proxy was faulted during the write or had healed less than
//!   [`PARTITION_GRACE`] before it (Redis may not have heard of them: nobody can know until
//!   the path heals; they fall under (b)); for M all (they are its own).
//! - **(b)** On the two-tier instances, a read stale against all writes (or on D against a
//!   partitioned writer's) has a window of at most [`HEALTHY_WINDOW`]; if feed-breaking
//!   faults (all but eviction; a proxy fault only on the reader's or the writer's proxy)
//!   overlap the time from the overtaking write's start to the read's start, at most
//!   3 × [`HEARTBEAT`] + their total duration + [`FAULT_SLACK`]. Both are reported apart.
//! - **(c)** Every call returns within [`CALL_BOUND`], nothing panics, and every error a call
//!   returns is a failure the store injected while that call ran.
//! - **(d)** After the faults stop and everything is healed (proxies pass, Redis running,
//!   `maxmemory` back), every sweep that starts [`CONVERGE_WITHIN`] after healing or later
//!   reads, on every instance, every id, every id's current address and the whole list as
//!   the store has them now.
//!
//! # Faults (`HISTORY_FAULTS`, default all)
//!
//! One at a time, 0.3–1.2 s apart, the kinds in a seeded order, repeated (a 15 s run
//! mostly has every kind): `evict` (`maxmemory` just above use, allkeys-lru, a filler
//! writing 64 KiB junk values; the cache's evicted keys are reported from Redis's eviction
//! events), `freeze` (SIGSTOP 0.3–2 s, SIGCONT), `kill` (SIGKILL, restart empty after
//! 0.2–1.5 s), `restore` (SAVE, 0.8–2.5 s of workload, SIGKILL and restart from the snapshot),
//! `clientkill` (`CLIENT KILL TYPE pubsub` or `normal`), `proxy` (one of B, C, D's proxies
//! delays 50–400 ms or blackholes for 0.3–2 s, sometimes then drops every connection).
//!
//! # Running
//!
//! `cargo test -p cache-tests --test history -- --nocapture` runs seeds [`CI_SEEDS`] for
//! [`CI_SECONDS`] s each; `HISTORY_SEED=7` runs one seed, `HISTORY_SECONDS=120` longer,
//! `HISTORY_FAULTS=evict,restore` (or `none`) chooses the faults, `HISTORY_SHOW=5` shows five
//! offending sub-histories per rule instead of one (spread over the run). It needs `redis-server` on
//! the `PATH` and starts its own (it kills and freezes it); `REDIS_URL` is ignored.
//!
//! # On a cluster
//!
//! `history_on_a_cluster_under_failovers` runs the same workload and rules on a Redis Cluster
//! of the test's own (three primaries, three replicas, node timeout 1 s; `REDIS_CLUSTER_NODES`
//! is ignored: it kills nodes), seeds [`CLUSTER_CI_SEEDS`], every instance connected directly
//! (no proxies). Its faults (`HISTORY_FAULTS` among `failover,freeze,clientkill`): `failover`
//! (SIGKILL of a primary, every other time the one holding the namespace's tag versions; the
//! fault lasts until its replica serves its slots and the node, restarted empty, has rejoined
//! as a replica in sync), `freeze` (SIGSTOP of a primary for 0.3–2 s: beyond the node timeout
//! its replica takes over; the fault lasts until the cluster is whole), `clientkill` (on a
//! random node).

mod support;

#[path = "support/history/mod.rs"]
mod history;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::backend::RedisBackend;
use cache_runtime::Cache;
use history::check::{Bounds, Checker, Convergence, History, Rule};
use history::faults::{self, Evictions, FaultKind, Injector, Target, ROOMY};
use history::proxy::Proxy;
use history::record::{dur, Call, Instance, Kind, Op, Outcome};
use history::store::{self, Customer, Repo, Store, StoreView, OP};
use support::redis_cluster::RedisCluster;
use support::redis_server::{namespace, RedisServer};

/// (b): the largest window of a stale read on a two-tier instance while the feed is healthy.
const HEALTHY_WINDOW: Duration = Duration::from_millis(1500);
/// Each Redis instance's heartbeat; a feed silent for three is broken.
const HEARTBEAT: Duration = Duration::from_millis(200);
/// (b): added to 3 heartbeats and the faults' duration for windows overlapping faults.
const FAULT_SLACK: Duration = Duration::from_secs(1);
/// (a): a write made this soon after its instance's proxy healed may still be queued: while
/// the writer's circuit breaker is open, one invalidation at a time probes Redis (50 ms) and
/// the others are queued for the send under way or the replay (every 50 ms).
const PARTITION_GRACE: Duration = Duration::from_millis(300);
/// (c): every call returns within this.
const CALL_BOUND: Duration = Duration::from_secs(5);
/// (d): every instance reads the store's current state this long after healing.
const CONVERGE_WITHIN: Duration = Duration::from_secs(3);

/// The bounds above, as the checker takes them.
fn bounds() -> Bounds {
    Bounds {
        healthy_window: HEALTHY_WINDOW,
        heartbeat: HEARTBEAT,
        fault_slack: FAULT_SLACK,
        partition_grace: PARTITION_GRACE,
        call: CALL_BOUND,
        converge: CONVERGE_WITHIN,
    }
}

const CI_SEEDS: [u64; 3] = [1, 2, 3];
const CLUSTER_CI_SEEDS: [u64; 2] = [1, 2];
const CI_SECONDS: u64 = 15;
const IDS: usize = 8;
const TASKS_PER_INSTANCE: usize = 3;

#[test]
fn history_of_concurrent_calls_under_faults() {
    let found = std::process::Command::new("redis-server")
        .arg("--version")
        .output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "the history test needs `redis-server` on the PATH (apt-get install redis-server, or \
         ./scripts/test installs it): it starts, kills and freezes a server of its own and \
         never uses REDIS_URL"
    );
    run_seeds(Deployment::Server, &CI_SEEDS);
}

/// The same workload and rules on the test's own Redis Cluster (three primaries, three
/// replicas), the faults failing primaries over, freezing them and killing clients.
/// `HISTORY_FAULTS=failover,freeze,clientkill` chooses among them.
#[test]
fn history_on_a_cluster_under_failovers() {
    run_seeds(Deployment::Cluster, &CLUSTER_CI_SEEDS);
}

/// Where the instances share their cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Deployment {
    /// One `redis-server`, three of the instances through proxies.
    Server,
    /// A Redis Cluster, every instance connected directly.
    Cluster,
}

impl Deployment {
    fn faults(self) -> &'static [FaultKind] {
        match self {
            Deployment::Server => &FaultKind::ALL,
            Deployment::Cluster => &FaultKind::CLUSTER,
        }
    }

    fn test_name(self) -> &'static str {
        match self {
            Deployment::Server => "history_of_concurrent_calls_under_faults",
            Deployment::Cluster => "history_on_a_cluster_under_failovers",
        }
    }
}

fn run_seeds(deployment: Deployment, ci_seeds: &[u64]) {
    let seeds = env_count("HISTORY_SEED").map_or(ci_seeds.to_vec(), |s| vec![s]);
    let seconds = env_count("HISTORY_SECONDS").unwrap_or(CI_SECONDS);
    let kinds = faults::from_env(deployment.faults());
    let mut failures = Vec::new();
    for seed in seeds {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (report, failure) = runtime.block_on(run(deployment, seed, seconds, &kinds));
        runtime.shutdown_timeout(Duration::from_secs(2));
        match failure {
            Some(failure) => failures.push(failure), // the report is in it
            None => eprint!("{report}"),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn env_count(name: &str) -> Option<u64> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).map(|v| {
        v.parse::<u64>()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

struct Env {
    store: Store,
    instances: Vec<Instance>,
    repos: Vec<Repo>,
    next_op: AtomicU64,
}

async fn run(
    deployment: Deployment,
    seed: u64,
    seconds: u64,
    kinds: &[FaultKind],
) -> (String, Option<String>) {
    let ns = namespace(&format!("history-{seed}"));
    let target = tokio::task::block_in_place(|| match deployment {
        Deployment::Server => Target::Server(RedisServer::start_with(&[
            "--maxmemory",
            ROOMY,
            "--maxmemory-policy",
            "allkeys-lru",
            "--notify-keyspace-events",
            "Ee",
        ])),
        Deployment::Cluster => Target::Cluster {
            cluster: RedisCluster::start(),
            tags_key: format!("{{{ns}}}:m"),
        },
    });
    let store = Store::new(seed);
    let shared: Vec<String> = (0..IDS).map(|i| format!("s{i}")).collect();
    let own: Vec<String> = (0..IDS).map(|i| format!("m{i}")).collect();
    store.seed(&shared);
    store.seed(&own);
    let seeded_at = Instant::now();

    let mut proxies = Vec::new();
    if let Target::Server(server) = &target {
        for _ in 0..3 {
            proxies.push(Arc::new(Proxy::start(server.port()).await));
        }
    }
    // The URL each instance reaches Redis through: on one server A directly and B, C, D
    // through their proxies; on a cluster, every instance directly.
    let url = |instance: usize| match &target {
        Target::Server(server) if instance == 0 => server.url.clone(),
        Target::Server(_) => proxies[instance - 1].url.clone(),
        Target::Cluster { .. } => String::new(),
    };
    let redis = |instance: usize| {
        let builder = match &target {
            Target::Server(_) => RedisBackend::builder(url(instance)),
            Target::Cluster { cluster, .. } => RedisBackend::cluster(cluster.urls()),
        };
        builder
            .namespace(&ns)
            .heartbeat(HEARTBEAT)
            .build()
            .expect("a valid URL")
    };
    let two_tier = |instance: usize| Cache::builder().backend(redis(instance)).build();
    let proxied = deployment == Deployment::Server;
    let view = |prefix| StoreView {
        store: store.clone(),
        prefix,
    };
    let instance = |name, kind, proxied, ids: &Vec<String>| Instance {
        name,
        kind,
        proxied,
        ids: ids.clone(),
    };
    let instances = vec![
        instance("A", Kind::TwoTier, false, &shared),
        instance("B", Kind::TwoTier, proxied, &shared),
        instance("C", Kind::TwoTier, proxied, &shared),
        instance("D", Kind::L2Only, proxied, &shared),
        instance("M", Kind::Local, false, &own),
    ];
    let caches = vec![
        two_tier(0),
        two_tier(1),
        two_tier(2),
        Cache::builder()
            .backend(redis(3))
            .in_process_tier(false)
            .build(),
        Cache::in_memory(10_000),
    ];
    let repos: Vec<Repo> = caches
        .into_iter()
        .zip(&instances)
        .map(|(cache, i)| Repo {
            store: view(if i.kind == Kind::Local { "m" } else { "s" }),
            cache,
        })
        .collect();
    for repo in &repos[..3] {
        support::until(|| repo.cache.feed_connected()).await;
    }
    let env = Arc::new(Env {
        store: store.clone(),
        instances: instances.clone(),
        repos,
        next_op: AtomicU64::new(1),
    });

    let evictions = Arc::new(Evictions::default());
    let (stop_watch, stopped) = tokio::sync::watch::channel(false);
    let watcher = match &target {
        Target::Server(server) => Some(tokio::spawn(faults::watch_evictions(
            server.url.clone(),
            ns.clone(),
            evictions.clone(),
            stopped,
        ))),
        Target::Cluster { .. } => None,
    };

    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(seconds);
    let injector = tokio::spawn(
        Injector {
            target,
            proxies: (1..).zip(proxies.iter().cloned()).collect(),
            kinds: kinds.to_vec(),
            rng: fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            evictions: evictions.clone(),
            log: Vec::new(),
        }
        .run(until),
    );
    let mut workers = Vec::new();
    for instance in 0..instances.len() {
        for task in 0..TASKS_PER_INSTANCE {
            let rng = fastrand::Rng::with_seed(seed ^ ((instance * 16 + task) as u64 + 1) << 32);
            workers.push(tokio::spawn(worker(env.clone(), instance, rng, until)));
        }
    }
    let mut ops = Vec::new();
    for w in workers {
        ops.extend(w.await.expect("a worker task"));
    }
    let injector = injector.await.expect("the fault injector");
    for proxy in &proxies {
        proxy.set(history::proxy::Mode::Pass);
    }
    let healed_at = Instant::now();
    store.inject_failures(false);
    let (sweep_ops, convergence) = converge(&env, healed_at).await;
    ops.extend(sweep_ops);
    let _ = stop_watch.send(true);
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    let Injector {
        target,
        log: fault_log,
        ..
    } = injector;
    drop(target);
    ops.sort_by_key(|op| op.start);

    let applied = store.applied();
    let injected = store.injected();
    let h = History {
        seed,
        t0,
        seeded_at,
        instances: &instances,
        ops: &ops,
        applied: &applied,
        injected: &injected,
        faults: &fault_log,
    };
    let checker = Checker::new(&h, bounds());
    let verdict = checker.verdict(&convergence);
    let report = report(&h, &checker, &verdict, &evictions, seconds, kinds);
    // The faults must have done what they are for.
    let mut setup = Vec::new();
    let evicts = fault_log
        .iter()
        .filter(|f| f.kind == FaultKind::Evict)
        .count();
    if evicts > 0 && evictions.by_kind.lock().get("tag").copied().unwrap_or(0) == 0 {
        setup.push(format!(
            "{evicts} evict fault(s) evicted {} keys but none of the cache's tag keys: eviction is not being tested",
            evictions.info_evicted.lock()
        ));
    }
    if !verdict.failed() && setup.is_empty() {
        return (report, None);
    }
    let mut failure = String::new();
    let faults_env = if kinds.len() == deployment.faults().len() {
        String::new()
    } else if kinds.is_empty() {
        "HISTORY_FAULTS=none ".into()
    } else {
        let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        format!("HISTORY_FAULTS={} ", names.join(","))
    };
    writeln!(
        failure,
        "history FAILED, seed {seed} (reproduce: HISTORY_SEED={seed} HISTORY_SECONDS={seconds} \
         {faults_env}cargo test -p cache-tests --test history {} -- --nocapture)",
        deployment.test_name()
    )
    .unwrap();
    failure.push_str(&report);
    writeln!(failure, "  fault log:").unwrap();
    for fault in &fault_log {
        writeln!(failure, "    {}", checker.fault_line(fault)).unwrap();
    }
    for (rule, title) in [
        (Rule::A, "(a) stale reads on the writer or without L1"),
        (Rule::BHealthy, "(b) stale beyond the healthy bound"),
        (Rule::BFault, "(b) stale beyond the fault bound"),
    ] {
        let beyond: Vec<_> = verdict
            .findings
            .iter()
            .filter(|f| f.rule == rule && f.beyond())
            .collect();
        if beyond.is_empty() {
            continue;
        }
        let shown = env_count("HISTORY_SHOW").unwrap_or(1) as usize;
        let step = (beyond.len() / shown.max(1)).max(1);
        writeln!(failure, "  {title}: {}, {shown} of them:", beyond.len()).unwrap();
        for f in beyond.iter().step_by(step).take(shown) {
            for line in checker.explain(f).lines() {
                writeln!(failure, "    {line}").unwrap();
            }
        }
    }
    if !verdict.calls.is_empty() {
        writeln!(
            failure,
            "  (c) {} call(s) failed or hung:",
            verdict.calls.len()
        )
        .unwrap();
        for (op, why) in verdict.calls.iter().take(5) {
            writeln!(failure, "    {why}: {}", checker.call_line(*op)).unwrap();
        }
    }
    if let Err(why) = &verdict.convergence {
        writeln!(failure, "  (d) did not converge: {why}").unwrap();
    }
    for why in &setup {
        writeln!(failure, "  setup: {why}").unwrap();
    }
    (report, Some(failure))
}

async fn worker(env: Arc<Env>, instance: usize, mut rng: fastrand::Rng, until: Instant) -> Vec<Op> {
    let mut ops = Vec::new();
    while Instant::now() < until {
        let call = pick(&mut rng, &env.instances[instance], &env.store);
        ops.push(perform(&env, instance, call, false).await);
        tokio::time::sleep(Duration::from_micros(rng.u64(500..=5_000))).await;
    }
    ops
}

/// A random call on one of the instance's ids, writes built from the store's current row.
fn pick(rng: &mut fastrand::Rng, instance: &Instance, store: &Store) -> Call {
    let id = instance.ids[rng.usize(..instance.ids.len())].clone();
    let row = store.row(&id);
    let recreate = || Customer {
        id: id.clone(),
        name: format!("{id}-back"),
        email: store::email(&id, store.email_number(&id)),
        active: true,
        version: 0,
    };
    match rng.u32(0..1000) {
        0..400 => Call::ById(id),
        400..550 => {
            let n = store.email_number(&id);
            let n = match rng.u32(0..10) {
                0..6 => n,
                6..8 => n.saturating_sub(1),
                _ => n + 1,
            };
            let address: String = store::email(&id, n)
                .chars()
                .map(|c| {
                    if rng.u32(0..10) < 3 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            Call::ByEmail(address)
        }
        550..670 => {
            if rng.u32(0..10) < 7 {
                Call::List { page: 1, limit: 16 }
            } else {
                Call::List { page: 2, limit: 3 }
            }
        }
        670..820 => Call::Save(match row {
            Some(mut c) => {
                c.name = format!("{id}-{}", rng.u32(0..10_000));
                if rng.u32(0..100) < 15 {
                    c.active = !c.active;
                }
                c
            }
            None => recreate(),
        }),
        820..890 => match row {
            Some(mut c) => {
                let old = std::mem::replace(&mut c.email, store.next_email(&id));
                Call::ChangeEmail { customer: c, old }
            }
            None => Call::Save(recreate()),
        },
        890..930 => match row {
            Some(c) => Call::Delete(c),
            None => Call::Save(recreate()),
        },
        930..998 => Call::AdminInvalidate(id),
        _ => Call::AdminClear(id),
    }
}

/// Runs one call in a task of its own (a panic is recorded, not fatal), bounded by
/// [`CALL_BOUND`]. The start is taken before and the end after, so both err on the side of
/// the cache.
async fn perform(env: &Env, instance: usize, call: Call, sweep: bool) -> Op {
    let id = env.next_op.fetch_add(1, Ordering::Relaxed);
    let repo = env.repos[instance].clone();
    let start = Instant::now();
    let mut task = tokio::spawn(OP.scope(id, execute(repo, call.clone())));
    let outcome = match tokio::time::timeout(CALL_BOUND, &mut task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::Panicked(match e.try_into_panic() {
            Ok(p) => p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
            Err(e) => e.to_string(),
        }),
        Err(_) => {
            task.abort();
            Outcome::TimedOut
        }
    };
    Op {
        id,
        instance,
        call,
        start,
        end: Instant::now(),
        outcome,
        sweep,
    }
}

async fn execute(repo: Repo, call: Call) -> Outcome {
    let one = |r: Result<Option<Customer>, store::StoreError>| match r {
        Ok(c) => Outcome::One(c),
        Err(e) => Outcome::StoreFailed(e.0),
    };
    let done = |r: Result<(), store::StoreError>| match r {
        Ok(()) => Outcome::Done { cache_error: None },
        Err(e) => Outcome::StoreFailed(e.0),
    };
    let renamed = || format!("renamed-{}", OP.try_with(|op| *op).unwrap_or(0));
    match call {
        Call::ById(id) => one(repo.find_by_id(&id).await),
        Call::ByEmail(address) => one(repo.find_by_email(&address).await),
        Call::List { page, limit } => match repo.find_active(page, limit).await {
            Ok(page) => Outcome::Page(page),
            Err(e) => Outcome::StoreFailed(e.0),
        },
        Call::Save(c) => done(repo.save(&c).await),
        Call::ChangeEmail { customer, old } => done(repo.change_email(&customer, &old).await),
        Call::Delete(c) => done(repo.delete(&c).await),
        Call::AdminInvalidate(id) => {
            if let Err(e) = repo.store.rename_behind_the_cache(&id, &renamed()).await {
                return Outcome::StoreFailed(e.0);
            }
            let tags = [format!("customer.{id}"), "customer.list".to_owned()];
            let result = repo.cache.invalidate_tags(tags).await;
            Outcome::Done {
                cache_error: result.err().map(|e| e.to_string()),
            }
        }
        Call::AdminClear(id) => {
            if let Err(e) = repo.store.rename_behind_the_cache(&id, &renamed()).await {
                return Outcome::StoreFailed(e.0);
            }
            match repo.cache.clear().await {
                Ok(()) => Outcome::Done { cache_error: None },
                Err(e) => Outcome::ClearFailed(e.to_string()),
            }
        }
    }
}

/// (d): sweeps every instance over every id, its current address and the whole list until
/// [`CONVERGE_WITHIN`] + 1 s after healing, noting what differs from the store.
async fn converge(env: &Env, healed_at: Instant) -> (Vec<Op>, Convergence) {
    let deadline = healed_at + CONVERGE_WITHIN;
    let end = deadline + Duration::from_secs(1);
    let mut ops = Vec::new();
    let mut sweeps = Vec::new();
    loop {
        let at = Instant::now();
        if at >= end && sweeps.iter().any(|(s, _)| *s >= deadline) {
            break;
        }
        let rows = env.store.rows();
        let results =
            futures_util::future::join_all((0..env.instances.len()).map(|i| sweep(env, i, &rows)))
                .await;
        let mut wrong = Vec::new();
        for (swept, w) in results {
            ops.extend(swept);
            wrong.extend(w);
        }
        sweeps.push((at, wrong));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (ops, Convergence { healed_at, sweeps })
}

async fn sweep(
    env: &Env,
    instance: usize,
    rows: &BTreeMap<String, Option<Customer>>,
) -> (Vec<Op>, Vec<String>) {
    let ids = &env.instances[instance].ids;
    let name = env.instances[instance].name;
    let mut ops = Vec::new();
    let mut wrong = Vec::new();
    let show = |c: &Option<Customer>| match c {
        Some(c) => format!("v{}", c.version),
        None => "none".into(),
    };
    for id in ids {
        let row = rows.get(id).cloned().flatten();
        let address = row.as_ref().map_or_else(
            || store::email(id, env.store.email_number(id)),
            |c| c.email.clone(),
        );
        for call in [Call::ById(id.clone()), Call::ByEmail(address)] {
            let op = perform(env, instance, call, true).await;
            match &op.outcome {
                Outcome::One(got) if *got == row => {}
                Outcome::One(got) => wrong.push(format!(
                    "{name} {}({id}) -> {} (store: {})",
                    op.call.kind(),
                    show(got),
                    show(&row)
                )),
                other => wrong.push(format!("{name} {}({id}) -> {other:?}", op.call.kind())),
            }
            ops.push(op);
        }
    }
    let listed: Vec<Customer> = ids
        .iter()
        .filter_map(|id| rows.get(id).cloned().flatten())
        .filter(|c| c.active)
        .collect();
    let op = perform(env, instance, Call::List { page: 1, limit: 16 }, true).await;
    match &op.outcome {
        Outcome::Page(page) if *page == listed => {}
        other => wrong.push(format!("{name} find_active(1, 16) -> {other:?}")),
    }
    ops.push(op);
    (ops, wrong)
}

fn report(
    h: &History<'_>,
    checker: &Checker<'_>,
    verdict: &history::check::Verdict,
    evictions: &Evictions,
    seconds: u64,
    kinds: &[FaultKind],
) -> String {
    let mut out = String::new();
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    writeln!(
        out,
        "history seed {} ({seconds} s, faults: {}): {}",
        h.seed,
        if names.is_empty() {
            "none".into()
        } else {
            names.join(",")
        },
        if verdict.failed() { "FAIL" } else { "pass" }
    )
    .unwrap();
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut store_errors, mut cache_errors) = (0, 0);
    for op in h.ops.iter().filter(|op| !op.sweep) {
        *by_kind.entry(op.call.kind()).or_default() += 1;
        match &op.outcome {
            Outcome::StoreFailed(_) => store_errors += 1,
            Outcome::ClearFailed(_)
            | Outcome::Done {
                cache_error: Some(_),
            } => cache_errors += 1,
            _ => {}
        }
    }
    let counts: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    writeln!(
        out,
        "  calls {}: {}; store errors {store_errors}, cache API errors {cache_errors}",
        by_kind.values().sum::<u64>(),
        counts.join(", ")
    )
    .unwrap();
    let mut faults: BTreeMap<&str, (usize, Duration, Duration)> = BTreeMap::new();
    for f in h.faults {
        let e = faults
            .entry(f.kind.name())
            .or_insert((0, Duration::MAX, Duration::ZERO));
        e.0 += 1;
        e.1 = e.1.min(f.duration());
        e.2 = e.2.max(f.duration());
    }
    let faults: Vec<String> = faults
        .iter()
        .map(|(k, (n, lo, hi))| format!("{k} {n} ({}..{})", dur(*lo), dur(*hi)))
        .collect();
    writeln!(
        out,
        "  faults {}: {}",
        h.faults.len(),
        if faults.is_empty() {
            "none".into()
        } else {
            faults.join(", ")
        }
    )
    .unwrap();
    if kinds.contains(&FaultKind::Evict) {
        let by_kind: Vec<String> = evictions
            .by_kind
            .lock()
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let mut names: Vec<(String, u64)> = evictions.names.lock().clone().into_iter().collect();
        names.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let names: Vec<String> = names
            .iter()
            .take(6)
            .map(|(k, n)| format!("{k} ×{n}"))
            .collect();
        writeln!(
            out,
            "  evicted: evicted_keys +{}; the cache's: {} [{}]",
            evictions.info_evicted.lock(),
            if by_kind.is_empty() {
                "none".into()
            } else {
                by_kind.join(", ")
            },
            names.join(", ")
        )
        .unwrap();
    }
    let count = |rule: Rule| {
        let of: Vec<_> = verdict.findings.iter().filter(|f| f.rule == rule).collect();
        let beyond = of.iter().filter(|f| f.beyond()).count();
        let largest = of.iter().map(|f| f.window()).max().unwrap_or_default();
        (of.len() - beyond, beyond, largest)
    };
    let (_, a, _) = count(Rule::A);
    let (hw, hb, hl) = count(Rule::BHealthy);
    let (fw, fb, fl) = count(Rule::BFault);
    let swept = verdict
        .findings
        .iter()
        .filter(|f| f.rule == Rule::A && f.read(h).sweep)
        .count();
    writeln!(
        out,
        "  {} reads: (a) {a} stale ({swept} in the convergence sweeps); (b) healthy {hw} within / \
         {hb} beyond {} (largest {}), during faults {fw} within / {fb} beyond (largest {})",
        verdict.reads_checked,
        dur(HEALTHY_WINDOW),
        dur(hl),
        dur(fl)
    )
    .unwrap();
    if a > 0 {
        // By reader, by the last fault begun before the read, and how many most likely joined
        // a load begun before the write.
        let mut readers: BTreeMap<&str, usize> = BTreeMap::new();
        let mut after: BTreeMap<&str, usize> = BTreeMap::new();
        let mut joined = 0;
        for f in verdict.findings.iter().filter(|f| f.rule == Rule::A) {
            let read = f.read(h);
            *readers.entry(h.instances[read.instance].name).or_default() += 1;
            let kind = h
                .faults
                .iter()
                .rfind(|x| x.start <= read.start)
                .map_or("none yet", |x| x.kind.name());
            *after.entry(kind).or_default() += 1;
            joined += usize::from(checker.joined(f).is_some());
        }
        let list = |m: &BTreeMap<&str, usize>| {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            out,
            "    (a) by reader: {}; by the fault before: {}; joined a load begun before the write: {joined}",
            list(&readers),
            list(&after)
        )
        .unwrap();
    }
    writeln!(
        out,
        "  (c) {} call(s) failed or hung; (d) {}",
        verdict.calls.len(),
        match &verdict.convergence {
            Ok(d) => format!("converged {} after healing", dur(*d)),
            Err(_) => format!("did not converge within {}", dur(CONVERGE_WITHIN)),
        }
    )
    .unwrap();
    out
}

/// The checker itself, on a history written by hand: a write of `s1` (v1 → v2) by A, then
/// reads that must or must not be flagged, under the rule they fall under.
#[test]
fn the_checker_tells_stale_reads_by_rule() {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let customer = |version| Customer {
        id: "s1".into(),
        name: format!("v{version}"),
        email: store::email("s1", 0),
        active: true,
        version,
    };
    let instances: Vec<Instance> = [
        ("A", Kind::TwoTier),
        ("B", Kind::TwoTier),
        ("D", Kind::L2Only),
    ]
    .into_iter()
    .map(|(name, kind)| Instance {
        name,
        kind,
        proxied: false,
        ids: vec!["s1".into()],
    })
    .collect();
    let op = |id, instance, call, (from, to), outcome| Op {
        id,
        instance,
        call,
        start: at(from),
        end: at(to),
        outcome,
        sweep: false,
    };
    let by_id = || Call::ById("s1".into());
    let v = |version| Outcome::One(Some(customer(version)));
    let ops = vec![
        op(
            1,
            0,
            Call::Save(customer(0)),
            (10, 20),
            Outcome::Done { cache_error: None },
        ),
        op(2, 0, by_id(), (30, 31), v(1)),     // (a): A's own write
        op(3, 1, by_id(), (30, 31), v(1)),     // (b): 10 ms after A's write
        op(4, 1, by_id(), (3000, 3001), v(1)), // (b): beyond 1.5 s
        op(5, 2, by_id(), (30, 31), v(2)),     // fresh
        op(
            6,
            2,
            Call::ByEmail("S1-0@Example.Test".into()),
            (30, 31),
            Outcome::One(None),
        ), // (a): she has it
        op(7, 1, by_id(), (12, 25), v(1)),     // overlaps the write: either is fine
        op(
            8,
            2,
            Call::ByEmail("s1-1@example.test".into()),
            (30, 31),
            Outcome::One(None),
        ), // nobody has it
        // D gives her a new address, A renames her: A's rename did not change who has the
        // address, so A's stale "nobody" is D's write's business, (b).
        op(
            9,
            2,
            Call::ChangeEmail {
                customer: customer(0),
                old: store::email("s1", 0),
            },
            (40, 45),
            Outcome::Done { cache_error: None },
        ),
        op(
            10,
            0,
            Call::AdminInvalidate("s1".into()),
            (50, 55),
            Outcome::Done { cache_error: None },
        ),
        op(
            11,
            0,
            Call::ByEmail("s1-1@example.test".into()),
            (60, 61),
            Outcome::One(None),
        ),
    ];
    let moved = |version| Customer {
        email: store::email("s1", 1),
        ..customer(version)
    };
    let applied = vec![
        store::Applied {
            version: 1,
            id: "s1".into(),
            row: Some(customer(1)),
            op: None,
            at: at(0),
        },
        store::Applied {
            version: 2,
            id: "s1".into(),
            row: Some(customer(2)),
            op: Some(1),
            at: at(15),
        },
        store::Applied {
            version: 3,
            id: "s1".into(),
            row: Some(moved(3)),
            op: Some(9),
            at: at(42),
        },
        store::Applied {
            version: 4,
            id: "s1".into(),
            row: Some(moved(4)),
            op: Some(10),
            at: at(52),
        },
    ];
    let h = History {
        seed: 0,
        t0: at(0),
        seeded_at: at(0),
        instances: &instances,
        ops: &ops,
        applied: &applied,
        injected: &[],
        faults: &[],
    };
    let checker = Checker::new(&h, bounds());
    let verdict = checker.verdict(&Convergence {
        healed_at: at(4000),
        sweeps: vec![(at(8000), Vec::new())],
    });
    let found: Vec<(u64, Rule, bool, Duration)> = verdict
        .findings
        .iter()
        .map(|f| (f.read(&h).id, f.rule, f.beyond(), f.window()))
        .collect();
    assert_eq!(
        found,
        [
            (2, Rule::A, true, Duration::from_millis(10)),
            (3, Rule::BHealthy, false, Duration::from_millis(10)),
            (4, Rule::BHealthy, true, Duration::from_millis(2980)),
            (6, Rule::A, true, Duration::from_millis(30)), // she has had it since the seed
            (11, Rule::BHealthy, false, Duration::from_millis(15)),
        ]
    );
    assert!(verdict.calls.is_empty());
    assert_eq!(verdict.convergence, Ok(Duration::ZERO));
}
