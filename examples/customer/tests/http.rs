//! `serve` driven over real HTTP, on a real MongoDB-wire server.

mod support;

use support::app::Env;
use support::http::request;
use support::mongo::{database, MongoServer};

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
