//! The HTTP JSON API of one instance (axum). Each response says whether it came from the
//! cache, in `X-Cache` (`hit`, `stale`, `miss`, `bypass`).
//!
//! A customer's version is its `ETag` (`"3"`) on `GET`, and `version` in every body. `PUT`
//! honours `If-Match`: the change applies only to one of the versions given, and otherwise
//! answers 412 Precondition Failed, also when a concurrent change is saved first. Without
//! `If-Match` (or with `*`), a change that loses a race is applied again to the customer as
//! now stored (up to [`ATTEMPTS`](crate::application::ATTEMPTS) saves), and 409 Conflict says
//! that concurrent changes kept winning.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cache_runtime::{observe, CallOutcome, Observed};
use serde::Deserialize;
use serde_json::json;

use super::cache::{first_outcome, outcome_name, CachedCustomerRepository};
use super::persistence::CustomerStore;
use crate::application::{Precondition, UpdateCustomerCommand, UpdateCustomerCommandHandler};
use crate::domain::{Customer, CustomerRepository, RepositoryError};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState<S> {
    repository: CachedCustomerRepository<S>,
    handler: UpdateCustomerCommandHandler<CachedCustomerRepository<S>>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// The routes.
pub fn router<S: CustomerStore>(
    repository: CachedCustomerRepository<S>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Router {
    let state = AppState {
        handler: UpdateCustomerCommandHandler::new(repository.clone()),
        repository,
        metrics,
    };
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(render_metrics::<S>))
        .route("/customers", get(list::<S>))
        .route("/customers/by-email/{email}", get(by_email::<S>))
        .route(
            "/customers/{id}",
            get(by_id::<S>).put(update::<S>).delete(remove::<S>),
        )
        .with_state(state)
}

/// The `X-Cache` value: what the cache did for the first cached call, `bypass` when none was
/// made.
fn cache_header(observed: &[Observed]) -> &'static str {
    outcome_name(first_outcome(observed).unwrap_or(CallOutcome::Bypass))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn from_repository(e: RepositoryError) -> Response {
    let status = match &e {
        RepositoryError::NotFound(_) => StatusCode::NOT_FOUND,
        RepositoryError::DuplicateEmail(_) | RepositoryError::Conflict(_) => StatusCode::CONFLICT,
        RepositoryError::Invalid(_) => StatusCode::BAD_REQUEST,
        RepositoryError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

fn with_cache_header(mut response: Response, observed: &[Observed]) -> Response {
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(cache_header(observed)));
    response
}

/// A customer as JSON, with its version as a strong `ETag`.
fn with_etag(customer: Customer) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", customer.version))
        .expect("digits in quotes are a header value");
    let mut response = Json(customer).into_response();
    response.headers_mut().insert(header::ETAG, etag);
    response
}

/// The versions `If-Match` admits: any, for `*` or no header; none, for tags that are not
/// versions of ours (weak tags never match, as RFC 9110 compares `If-Match` strongly).
fn precondition(headers: &HeaderMap) -> Precondition {
    if !headers.contains_key(header::IF_MATCH) {
        return Precondition::Any;
    }
    let tags: Vec<&str> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .map(str::trim)
        .collect();
    if tags.contains(&"*") {
        return Precondition::Any;
    }
    // Strong comparison is of the characters: `"02"` is not `"2"`.
    let version = |tag: &str| -> Option<u64> {
        let digits = tag.strip_prefix('"')?.strip_suffix('"')?;
        digits
            .parse()
            .ok()
            .filter(|v: &u64| v.to_string() == digits)
    };
    Precondition::OneOf(tags.iter().filter_map(|tag| version(tag)).collect())
}

async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn by_id<S: CustomerStore>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
) -> Response {
    let (result, observed) = observe(app.repository.find_by_id(&id)).await;
    let response = match result {
        Ok(Some(customer)) => with_etag(customer),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("customer {id} not found")),
        Err(e) => from_repository(e),
    };
    with_cache_header(response, &observed)
}

async fn by_email<S: CustomerStore>(
    State(app): State<AppState<S>>,
    Path(email): Path<String>,
) -> Response {
    let (result, observed) = observe(app.repository.find_by_email(&email)).await;
    let response = match result {
        Ok(Some(customer)) => with_etag(customer),
        Ok(None) => error(StatusCode::NOT_FOUND, "no customer has this e-mail address"),
        Err(e) => from_repository(e),
    };
    with_cache_header(response, &observed)
}

#[derive(Deserialize)]
struct Page {
    page: Option<u32>,
    limit: Option<u32>,
    /// `?ids=a,b,c`: these customers instead of a page.
    ids: Option<String>,
}

/// The most ids one `GET /customers?ids=` takes.
const MAX_IDS: usize = 100;

async fn list<S: CustomerStore>(
    State(app): State<AppState<S>>,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(page)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "page and limit must be positive integers",
        );
    };
    if let Some(ids) = page.ids {
        return by_ids(&app, &ids).await;
    }
    let (page, limit) = (page.page.unwrap_or(1), page.limit.unwrap_or(20));
    if page == 0 || limit == 0 || limit > 100 {
        return error(
            StatusCode::BAD_REQUEST,
            "page starts at 1; limit is between 1 and 100",
        );
    }
    let (result, observed) = observe(app.repository.find_active_customers(page, limit)).await;
    let response = match result {
        Ok(customers) => Json(customers).into_response(),
        Err(e) => from_repository(e),
    };
    with_cache_header(response, &observed)
}

/// `GET /customers?ids=a,b,c`: the customers that exist, in the order asked, read through
/// the batch method (one store read for the ids not cached).
async fn by_ids<S: CustomerStore>(app: &AppState<S>, ids: &str) -> Response {
    let ids: Vec<String> = ids.split(',').map(|id| id.trim().to_owned()).collect();
    if ids.iter().any(String::is_empty) || ids.len() > MAX_IDS {
        return error(
            StatusCode::BAD_REQUEST,
            "ids is a comma-separated list of 1 to 100 non-empty ids",
        );
    }
    let (result, observed) = observe(app.repository.find_by_ids(&ids)).await;
    let response = match result {
        Ok(mut found) => {
            let customers: Vec<_> = ids.iter().filter_map(|id| found.remove(id)).collect();
            Json(customers).into_response()
        }
        Err(e) => from_repository(e),
    };
    // `hit` when every id was served from the cache.
    let all_hit = observed.iter().all(|o| o.outcome == CallOutcome::Hit);
    let outcome = if all_hit { "hit" } else { "miss" };
    let mut response = response;
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(outcome));
    response
}

async fn update<S: CustomerStore>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<UpdateCustomerCommand>, JsonRejection>,
) -> Response {
    let Json(mut command) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed body: {}", rejection.body_text()),
            )
        }
    };
    command.id = id;
    command.precondition = precondition(&headers);
    let conditional = command.precondition != Precondition::Any;
    match app.handler.handle(command).await {
        // The body carries the new version; no `ETag`: RFC 9110 (9.3.4) allows one in a PUT's
        // response only when the body sent was stored as sent, and this PUT merges fields.
        Ok(customer) => Json(customer).into_response(),
        Err(e @ RepositoryError::Conflict(_)) if conditional => {
            error(StatusCode::PRECONDITION_FAILED, e.to_string())
        }
        Err(e) => from_repository(e),
    }
}

async fn remove<S: CustomerStore>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
) -> Response {
    let customer = match app.repository.find_by_id(&id).await {
        Ok(Some(customer)) => customer,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("customer {id} not found")),
        Err(e) => return from_repository(e),
    };
    match app.repository.delete(&customer).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => from_repository(e),
    }
}

/// The cache's metrics (the runtime's `metrics` feature), rendered by the Prometheus exporter.
async fn render_metrics<S: CustomerStore>(State(app): State<AppState<S>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}
