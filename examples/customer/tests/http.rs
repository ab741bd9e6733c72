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

    let metrics = call("GET", "/metrics", None);
    assert_eq!(metrics.status, 200);
    let count = |series: &str| -> u64 {
        let prefix = format!("{series}{{method=\"CustomerRepository::find_by_id\"}} ");
        metrics
            .body
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing:\n{}", metrics.body))
    };
    assert!(count("cache_hits_total") >= 1);
    assert!(count("cache_misses_total") >= 3);
    assert!(
        metrics
            .body
            .contains("cache_invalidations_total{method=\"CustomerRepository::save\"} 1"),
        "{}",
        metrics.body
    );
}
