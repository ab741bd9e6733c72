//! The console subcommands, run as processes: exit codes and output, against a real
//! MongoDB-wire server and, for the shared cache, a real Redis.

mod support;

use std::time::{Duration, Instant};

use support::app::{stderr, stdout, Env};
use support::http::request;
use support::mongo::{database, MongoServer};
use support::redis_cluster::RedisCluster;
use support::redis_server::RedisServer;

fn env(server: &MongoServer, test: &str) -> Env {
    Env {
        mongodb_uri: Some(server.uri.clone()),
        database: database(test),
        redis_url: None,
        redis_cluster_nodes: None,
    }
}

#[test]
fn seed_invalidate_clear_and_bad_input() {
    let mongo = MongoServer::start();
    let env = env(&mongo, "console");

    let seeded = env.run(&["seed", "--count", "30"]);
    assert!(seeded.status.success(), "{}", stderr(&seeded));
    assert!(stdout(&seeded).contains("seeded 30 customers"));

    let nothing = env.run(&["invalidate"]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        stderr(&nothing).contains("nothing to invalidate: give --customer-id ID or --tags TAG"),
        "{}",
        stderr(&nothing)
    );

    let by_id = env.run(&["invalidate", "--customer-id", "c00001"]);
    assert!(by_id.status.success());
    assert!(stdout(&by_id).contains("invalidated tags: customer.c00001"));
    assert!(
        stderr(&by_id).contains("REDIS_URL is not set"),
        "says that nothing is shared"
    );

    let tags = env.run(&[
        "invalidate",
        "--tags",
        "customer.list",
        "--tags",
        "customer.email",
    ]);
    assert!(tags.status.success());
    assert!(stdout(&tags).contains("customer.list, customer.email"));

    let cleared = env.run(&["clear"]);
    assert!(cleared.status.success());
    assert!(stdout(&cleared).contains("cache cleared"));

    let stats = env.run(&["stats"]);
    assert!(stats.status.success());
    assert!(stdout(&stats).contains("no shared state"));

    let unknown = env.run(&["frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("unrecognized subcommand 'frobnicate'"));
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env {
        mongodb_uri: Some(format!(
            "mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=1000"
        )),
        database: "unreachable".into(),
        redis_url: None,
        redis_cluster_nodes: None,
    };
    let output = env.run(&["seed", "--count", "1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot reach MongoDB"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("\n  caused by: database unavailable: "),
        "the cause follows: {}",
        stderr(&output)
    );
}

#[test]
fn demo_runs_on_embedded_defaults() {
    let output = Env::default().run(&["demo"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    for expected in [
        "miss (loaded from the store)",
        "hit",
        "stale (refreshing in the background)",
        "the old address no longer finds her",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
}

fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_console_acts_on_the_cache_the_serve_instances_share() {
    let mongo = MongoServer::start();
    let redis = RedisServer::shared();
    let mut env = env(&mongo, "shared");
    env.redis_url = Some(redis.url.clone());
    the_console_acts_on_the_shared_cache(&env);
}

#[test]
fn the_console_acts_on_the_cache_shared_through_a_redis_cluster() {
    let mongo = MongoServer::start();
    let cluster = RedisCluster::shared();
    let mut env = env(&mongo, "cluster");
    env.redis_cluster_nodes = Some(cluster.nodes.join(","));
    the_console_acts_on_the_shared_cache(&env);
}

/// `serve` with the shared cache `env` names; the console's `invalidate`, `stats`, `warm` and
/// `clear` act on what it caches.
fn the_console_acts_on_the_shared_cache(env: &Env) {
    assert!(env.run(&["seed", "--count", "10"]).status.success());
    let server = env.serve();

    let get = |path: &str| request(&server.addr, "GET", path, None);
    assert_eq!(get("/customers/c00001").header("x-cache"), Some("miss"));
    assert_eq!(get("/customers/c00001").header("x-cache"), Some("hit"));
    assert_eq!(get("/customers/c00002").header("x-cache"), Some("miss"));

    let invalidated = env.run(&["invalidate", "--customer-id", "c00001"]);
    assert!(invalidated.status.success(), "{}", stderr(&invalidated));
    assert!(!stderr(&invalidated).contains("REDIS_URL is not set"));
    until("the instance dropping customer c00001", || {
        get("/customers/c00001").header("x-cache") == Some("miss")
    });
    assert_eq!(
        get("/customers/c00002").header("x-cache"),
        Some("hit"),
        "other entries stay"
    );

    // The instance publishes its counters every second; `stats` sums them.
    until("stats showing the instance", || {
        let out = stdout(&env.run(&["stats"]));
        let hits = out
            .lines()
            .find(|l| l.starts_with("CustomerRepository::find_by_id "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|h| h.parse::<u64>().ok());
        out.contains("1 running instance(s)") && hits >= Some(1)
    });

    let warmed = env.run(&["warm", "--limit", "5", "--pages", "1"]);
    assert!(warmed.status.success(), "{}", stderr(&warmed));
    let out = stdout(&warmed);
    assert!(
        out.contains("access statistics from 1 running instance(s)"),
        "{out}"
    );
    // The two customers read are in the shared cache now: loaded, or found there already.
    let line = out
        .lines()
        .find(|l| l.starts_with("warmed "))
        .expect("a report line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |i: usize| {
        words[i]
            .trim_start_matches('(')
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{line}"))
    };
    let (loaded, already) = (number(1), number(3));
    assert_eq!(loaded + already, 2, "{out}");

    let cleared = env.run(&["clear"]);
    assert!(cleared.status.success());
    until("the instance dropping everything", || {
        get("/customers/c00002").header("x-cache") == Some("miss")
    });
}
