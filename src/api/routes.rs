//! The gateway's HTTP surface: routes, and the layers in front of them.
//!
//! Layers, outermost first: body limit -> authentication (tenant key, or admin key for
//! `/v1/tollgate/*`) -> handler. The proxied endpoints hand over to [`super::proxy`].

use super::admin;
use super::classify::Route;
use super::gateway::{Gateway, RequestIds};
use super::proxy;
use super::ApiError;
use crate::auth::{bearer, Caller};
use crate::metering::Rates;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde_json::json;
use std::sync::Arc;

pub fn router(gw: Arc<Gateway>) -> Router {
    let tenant_routes = Router::new()
        .route("/v1/chat/completions", proxy_route(Route::Chat))
        .route("/v1/completions", proxy_route(Route::Completions))
        .route("/v1/embeddings", proxy_route(Route::Embeddings))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(gw.clone(), tenant_auth));
    // Anthropic's Messages: the same path behind the same authentication (a bearer token or
    // `x-api-key`), with answers and errors in Anthropic's shapes (the outer layer).
    let anthropic_routes = Router::new()
        .route("/v1/messages", proxy_route(Route::Messages))
        .route("/v1/messages/count_tokens", post(super::anthropic::count_tokens))
        .route_layer(middleware::from_fn_with_state(gw.clone(), tenant_auth))
        .route_layer(middleware::from_fn(super::anthropic::adapt));
    // OpenAI's Responses: the conversation expanded and the answer translated and kept by a layer
    // inside authentication (it needs the tenant); errors are OpenAI's already.
    let responses_routes = Router::new()
        .route("/v1/responses", proxy_route(Route::Responses))
        .route_layer(middleware::from_fn_with_state(gw.clone(), super::responses::adapt))
        .merge(
            Router::new()
                .route("/v1/responses/{id}", get(super::responses::retrieve).delete(super::responses::delete))
                .route("/v1/responses/{id}/input_items", get(super::responses::input_items)),
        )
        .route_layer(middleware::from_fn_with_state(gw.clone(), tenant_auth));
    // OpenAI's Files and Batch APIs (a file upload may be larger than a request body).
    let batch_routes = Router::new()
        .route(
            "/v1/files",
            post(super::files::upload)
                .layer(DefaultBodyLimit::max(gw.cfg.batches.max_file_bytes.saturating_add(64 * 1024)))
                .get(super::files::list),
        )
        .route("/v1/files/{id}", get(super::files::retrieve).delete(super::files::delete))
        .route("/v1/files/{id}/content", get(super::files::content))
        .route("/v1/batches", post(super::batches::create).get(super::batches::list))
        .route("/v1/batches/{id}", get(super::batches::retrieve))
        .route("/v1/batches/{id}/cancel", post(super::batches::cancel))
        .route_layer(middleware::from_fn_with_state(gw.clone(), tenant_auth));
    let admin_routes = Router::new()
        .route("/v1/tollgate/usage", get(admin::usage))
        .route("/v1/tollgate/ledger", get(admin::ledger))
        .route("/v1/tollgate/prices", get(admin::prices))
        .route("/v1/tollgate/extraction", get(admin::extraction))
        .route("/v1/tollgate/tenants", get(admin::tenants))
        .route("/v1/tollgate/tiers", get(admin::tiers))
        .route("/v1/tollgate/decisions", get(admin::decisions))
        .route("/v1/tollgate/keys", post(admin::create_key).get(admin::list_keys))
        .route("/v1/tollgate/keys/{id}", delete(admin::revoke_key))
        .route("/metrics", get(super::metrics::metrics))
        .route_layer(middleware::from_fn_with_state(gw.clone(), admin_auth));
    Router::new()
        .merge(tenant_routes)
        .merge(anthropic_routes)
        .merge(responses_routes)
        .merge(batch_routes)
        .merge(admin_routes)
        .merge(crate::dashboard::router())
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/openapi.json", get(openapi))
        .fallback(crate::api::error::unknown_route)
        .layer(DefaultBodyLimit::max(gw.cfg.body_limit_bytes))
        .with_state(gw)
}

/// The key a client presented: `Authorization: Bearer ...`, or Anthropic's `x-api-key`.
fn token(headers: &HeaderMap) -> Option<&str> {
    bearer(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()).filter(|k| !k.is_empty()))
}

/// The client's address, when the server was started with connection info.
fn client_ip(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
}

/// 429 for an address that failed authentication too often lately.
fn auth_blocked(gw: &Gateway, req: &Request) -> Option<Response> {
    let ip = client_ip(req)?;
    gw.auth.failures.check(ip).err().map(|retry_after_s| ApiError::AuthRateLimited { retry_after_s }.into_response())
}

fn auth_failed(gw: &Gateway, req: &Request, e: ApiError) -> Response {
    if let Some(ip) = client_ip(req) {
        gw.auth.failures.fail(ip);
    }
    e.into_response()
}

/// Authenticates a tenant key and passes the [`Caller`] on; 401 otherwise (429 for an address
/// with too many recent failures).
async fn tenant_auth(State(gw): State<Arc<Gateway>>, mut req: Request, next: Next) -> Response {
    if let Some(blocked) = auth_blocked(&gw, &req) {
        return blocked;
    }
    match gw.auth.tenant(token(req.headers())).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => auth_failed(&gw, &req, e),
    }
}

/// Admits only the admin key; tenant keys get 401 here (429 after too many failures).
async fn admin_auth(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    if let Some(blocked) = auth_blocked(&gw, &req) {
        return blocked;
    }
    if gw.auth.is_admin(token(req.headers())) {
        next.run(req).await
    } else {
        auth_failed(&gw, &req, ApiError::AdminOnly)
    }
}

async fn proxied(
    gw: Arc<Gateway>,
    route: Route,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let rid = RequestIds::of(&headers);
    match body {
        Ok(body) => proxy::handle(&gw, route, &caller, rid, body).await,
        Err(rejection) => {
            // Still one ledger row: the request passed authentication.
            let err = ApiError::from(rejection);
            let mut meter = crate::metering::Meter::new(
                gw.sink.clone(),
                rid.id,
                &caller.tenant,
                &caller.key_id,
                route.path(),
                Rates::default(),
                Rates::default(),
            );
            meter.client_request_id(rid.client);
            meter.finish(err.status().as_u16(), err.outcome(), Some(err.to_string())).wait().await;
            err.into_response()
        }
    }
}

/// The POST handler of a proxied endpoint.
fn proxy_route(route: Route) -> axum::routing::MethodRouter<Arc<Gateway>> {
    post(
        move |State(gw): State<Arc<Gateway>>,
              Extension(c): Extension<Caller>,
              h: HeaderMap,
              b: Result<Bytes, BytesRejection>| proxied(gw, route, c, h, b),
    )
}

/// The models this caller's key may use.
async fn models(State(gw): State<Arc<Gateway>>, Extension(c): Extension<Caller>) -> Json<serde_json::Value> {
    let mut names: Vec<&str> = gw.registry.models().filter(|m| gw.cfg.may_use(&c.tenant, m)).collect();
    names.sort_unstable();
    let data: Vec<_> =
        names.iter().map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "tollgate"})).collect();
    Json(json!({"object": "list", "data": data}))
}

/// The OpenAPI document of this API (public: it describes, it holds nothing).
pub const OPENAPI_JSON: &str = include_str!("assets/openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}
