//! `serve` driven over real HTTP, on a real MongoDB-wire server.

mod support;

use std::collections::BTreeSet;

use support::app::{Env, Server};
use support::http::{request, request_with, Response};
use support::mongo::{database, MongoServer};
use support::redis_server::RedisServer;

#[test]
fn the_api_reports_cache_use_and_maps_errors() {
    let mongo = MongoServer::start();
    let env = Env {
        mongodb_uri: Some(mongo.uri.clone()),
        database: database("http"),
        redis_url: None,
        redis_cluster_nodes: None,
    };
    assert!(env.run(&["seed", "--count", "12"]).status.success());
    let server = env.serve();
    let call =
        |method: &str, path: &str, body: Option<&str>| request(&server.addr, method, path, body);

    assert_eq!(call("GET", "/health", None).status, 200);

    let first = call("GET", "/customers/c00001", None);
    assert_eq!((first.status, first.header("x-cache")), (200, Some("miss")));
    assert_eq!(first.json()["email"], "customer1@example.com");
    assert_eq!(
        (first.header("etag"), &first.json()["version"]),
        (Some("\"1\""), &serde_json::json!(1)),
        "the version, as the ETag"
    );
    assert_eq!(
        call("GET", "/customers/c00001", None).header("x-cache"),
        Some("hit")
    );

    let page = call("GET", "/customers?page=1&limit=5", None);
    assert_eq!((page.status, page.header("x-cache")), (200, Some("miss")));
    assert_eq!(page.json().as_array().unwrap().len(), 5);
    assert_eq!(
        call("GET", "/customers?page=1&limit=5", None).header("x-cache"),
        Some("hit")
    );
    assert_eq!(
        call("GET", "/customers?page=1&limit=10", None).header("x-cache"),
        Some("miss"),
        "another limit, another entry"
    );
    // A batch: c00001 is cached, c00002 and c00003 are read in one store query, "nobody"
    // does not exist; then every id is a hit, for the batch and for the single GET.
    let batch = call("GET", "/customers?ids=c00001,c00002,nobody,c00003", None);
    assert_eq!((batch.status, batch.header("x-cache")), (200, Some("miss")));
    let found = batch.json();
    let ids: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c00001", "c00002", "c00003"]);
    assert_eq!(
        call("GET", "/customers?ids=c00003,nobody,c00002", None).header("x-cache"),
        Some("hit")
    );
    assert_eq!(
        call("GET", "/customers/c00003", None).header("x-cache"),
        Some("hit"),
        "the batch filled the single method's entry"
    );
    assert_eq!(
        call("GET", "/customers?ids=c00001,,c00002", None).status,
        400
    );
    assert_eq!(call("GET", "/customers?page=0&limit=5", None).status, 400);
    assert_eq!(call("GET", "/customers?page=x", None).status, 400);

    let by_email = call("GET", "/customers/by-email/Customer2@Example.com", None);
    assert_eq!(
        (by_email.status, by_email.header("x-cache")),
        (200, Some("miss"))
    );
    assert_eq!(
        call("GET", "/customers/by-email/customer2@example.com", None).header("x-cache"),
        Some("hit")
    );

    let updated = call(
        "PUT",
        "/customers/c00001",
        Some(r#"{"name": "Anna", "email": "anna@example.com"}"#),
    );
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.json()["version"], 2);
    assert_eq!(
        updated.header("etag"),
        None,
        "a PUT that merges fields sends no validator (RFC 9110, 9.3.4)"
    );
    let after = call("GET", "/customers/c00001", None);
    assert_eq!(
        (after.header("x-cache"), after.json()["name"].as_str()),
        (Some("miss"), Some("Anna")),
        "the PUT invalidated it"
    );
    assert_eq!(
        call("GET", "/customers/by-email/customer1@example.com", None).status,
        404,
        "the old e-mail is gone"
    );

    assert_eq!(
        call(
            "PUT",
            "/customers/c00003",
            Some(r#"{"email": "anna@example.com"}"#)
        )
        .status,
        409
    );
    assert_eq!(
        call("PUT", "/customers/c00003", Some("{not json")).status,
        400
    );
    assert_eq!(
        call("PUT", "/customers/c00003", Some(r#"{"nickname": "x"}"#)).status,
        400
    );
    assert_eq!(
        call(
            "PUT",
            "/customers/c00003",
            Some(r#"{"email": "not-an-address"}"#)
        )
        .status,
        400
    );
    assert_eq!(call("PUT", "/nobody", Some("{}")).status, 404);
    assert_eq!(
        call("PUT", "/customers/nobody", Some(r#"{"name": "X"}"#)).status,
        404
    );

    assert_eq!(call("DELETE", "/customers/c00004", None).status, 204);
    assert_eq!(call("GET", "/customers/c00004", None).status, 404);
    assert_eq!(call("DELETE", "/customers/c00004", None).status, 404);

    // Scraped as Prometheus would, and parsed by a real parser.
    let metrics = call("GET", "/metrics", None);
    assert_eq!(metrics.status, 200);
    let scrape = prometheus_parse::Scrape::parse(metrics.body.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not the Prometheus text format ({e}):\n{}", metrics.body));
    let sample = |name: &str, method: &str| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("method") == Some(method))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{name}: {other:?}"),
            })
            .unwrap_or_else(|| panic!("{name}{{method={method:?}}} missing:\n{}", metrics.body))
    };
    let find = "CustomerRepository::find_by_id";
    assert!(sample("cache_hits_total", find) >= 1.0);
    assert!(sample("cache_misses_total", find) >= 3.0);
    assert!(sample("cache_loads_total", find) >= 3.0);
    assert_eq!(
        sample("cache_invalidations_total", "CustomerRepository::save"),
        1.0
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "cache_load_duration_seconds"
                && s.labels.get("method") == Some(find)),
        "load durations of {find}:\n{}",
        metrics.body
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "cache_entries" && s.labels.get("tier") == Some("memory")),
        "the entry gauge:\n{}",
        metrics.body
    );

    // The Grafana dashboard shipped beside the example queries only series the app exposes
    // (the shared-tier round trips appear once a Redis backend is configured).
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../grafana/cache-dashboard.json"))
            .expect("the dashboard is JSON");
    let exposed: std::collections::BTreeSet<&str> =
        scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 5);
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("cache_") && word != "cache_backend_duration_seconds" {
                    assert!(
                        exposed.contains(word),
                        "{}: {word} is not exposed",
                        panel["title"]
                    );
                }
            }
        }
    }
}

/// A PUT of `{"name": name}` with `If-Match: if_match`.
fn rename(server: &Server, id: &str, name: &str, if_match: Option<&str>) -> Response {
    let body = serde_json::json!({ "name": name }).to_string();
    let headers: Vec<(&str, &str)> = if_match.map(|tag| ("If-Match", tag)).into_iter().collect();
    request_with(
        &server.addr,
        "PUT",
        &format!("/customers/{id}"),
        &headers,
        Some(&body),
    )
}

#[test]
fn put_honours_if_match_and_answers_with_the_new_etag() {
    let mongo = MongoServer::start();
    let env = Env {
        mongodb_uri: Some(mongo.uri.clone()),
        database: database("if-match"),
        ..Env::default()
    };
    assert!(env.run(&["seed", "--count", "3"]).status.success());
    let server = env.serve();
    let etag_of = |r: &Response| r.header("etag").map(str::to_owned);
    let get = request(&server.addr, "GET", "/customers/c00002", None);
    assert_eq!(etag_of(&get).as_deref(), Some("\"1\""));

    let bea = rename(&server, "c00002", "Bea", Some("\"1\""));
    assert_eq!(bea.status, 200, "{}", bea.body);
    assert_eq!(bea.json()["version"], 2);
    for stale in ["\"1\"", "W/\"2\"", "\"02\"", "\"+2\"", "\"two\"", "2"] {
        let refused = rename(&server, "c00002", "Lost", Some(stale));
        assert_eq!(refused.status, 412, "If-Match: {stale}: {}", refused.body);
    }
    let now = request(&server.addr, "GET", "/customers/c00002", None);
    assert_eq!(
        (now.json()["name"].as_str(), etag_of(&now).as_deref()),
        (Some("Bea"), Some("\"2\"")),
        "no refused change was applied"
    );
    for (if_match, name, version) in [
        (Some("\"5\", \"2\""), "Cleo", 3),
        (Some("*"), "Dee", 4),
        (None, "Eve", 5),
    ] {
        let saved = rename(&server, "c00002", name, if_match);
        assert_eq!(saved.status, 200, "If-Match: {if_match:?}: {}", saved.body);
        assert_eq!(saved.json()["version"], version, "If-Match: {if_match:?}");
    }
    let now = request(&server.addr, "GET", "/customers/c00002", None);
    assert_eq!(etag_of(&now).as_deref(), Some("\"5\""));
    assert_eq!(rename(&server, "nobody", "X", Some("\"1\"")).status, 404);
}

/// The customer's name and `ETag` as `server` answers them.
fn read(server: &Server, id: &str) -> (String, String) {
    let got = request(&server.addr, "GET", &format!("/customers/{id}"), None);
    assert_eq!(got.status, 200, "{}", got.body);
    let name = got.json()["name"].as_str().expect("a name").to_owned();
    (name, got.header("etag").expect("an ETag").to_owned())
}

/// Waits (up to 10 s) until `server` answers `expected` (name, ETag) for the customer.
fn agree(server: &Server, id: &str, expected: &(String, String)) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = read(server, id);
        if &answer == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} still answers {answer:?}, not {expected:?}",
            server.addr
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn concurrent_read_modify_writes_over_two_instances_lose_no_change() {
    let mongo = MongoServer::start();
    let redis = RedisServer::shared();
    let env = Env {
        mongodb_uri: Some(mongo.uri.clone()),
        database: database("increments"),
        redis_url: Some(redis.url.clone()),
        redis_cluster_nodes: None,
    };
    assert!(env.run(&["seed", "--count", "3"]).status.success());
    let servers = [env.serve(), env.serve()];
    let (start, _) = read(&servers[0], "c00001");

    // 50 clients, each: GET, then PUT of the name plus one character with If-Match, again
    // after a 412. Reads and writes go to either instance; each caches what it reads.
    let outcomes: Vec<(usize, Vec<u16>)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..50)
            .map(|i| {
                let (reads, writes) = (&servers[i % 2], &servers[(i / 2) % 2]);
                scope.spawn(move || {
                    let mut statuses = Vec::new();
                    for _ in 0..500 {
                        let (name, etag) = read(reads, "c00001");
                        let put = rename(writes, "c00001", &format!("{name}x"), Some(&etag));
                        statuses.push(put.status);
                        match put.status {
                            200 => return (i, statuses),
                            412 => continue,
                            other => panic!("client {i}: {other}: {}", put.body),
                        }
                    }
                    panic!("client {i} never saved its change: {statuses:?}")
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert_eq!(outcomes.len(), 50);
    let expected = (format!("{start}{}", "x".repeat(50)), "\"51\"".to_owned());
    for server in &servers {
        // The other instance hears the last save's invalidation through its feed.
        agree(server, "c00001", &expected);
    }
    let refused: usize = outcomes
        .iter()
        .map(|(_, s)| s.iter().filter(|&&s| s == 412).count())
        .sum();
    eprintln!("50 changes saved after {refused} refusals (412)");

    // Without If-Match, the server applies each change to what is stored: a change that
    // loses a race is applied again to a fresh read, and 409 says concurrent changes kept
    // winning. Every 200 is one version, none is lost, no response is a 5xx.
    let answers: Vec<Response> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..20)
            .map(|i| {
                let server = &servers[i % 2];
                scope.spawn(move || rename(server, "c00001", &format!("Writer {i}"), None))
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut versions = BTreeSet::new();
    for answer in &answers {
        match answer.status {
            200 => assert!(versions.insert(answer.json()["version"].as_u64().unwrap())),
            409 => {}
            other => panic!("{other}: {}", answer.body),
        }
    }
    let saved = versions.len() as u64;
    assert!(saved > 0);
    assert_eq!(
        versions,
        (52..=51 + saved).collect::<BTreeSet<u64>>(),
        "one version per change saved, consecutive"
    );
    let (name, _) = read(&servers[1], "c00001");
    for server in &servers {
        agree(
            server,
            "c00001",
            &(name.clone(), format!("\"{}\"", 51 + saved)),
        );
    }
}
