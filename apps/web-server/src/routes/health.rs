//! Liveness and readiness.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::{Value, json};

use crate::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is up.
pub async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: PostgreSQL, Redis and SQS all answer. `503 not_ready` names the ones that do not.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let (database, redis, sqs) = tokio::join!(
        check_database(&state),
        check_redis(&state),
        check_sqs(&state)
    );
    let checks = json!({"database": label(database), "redis": label(redis), "sqs": label(sqs)});
    if database && redis && sqs {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "checks": checks})),
        )
    } else {
        let body = json!({
            "error": {"code": "not_ready", "message": "a dependency is not reachable"},
            "checks": checks,
        });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    }
}

fn label(ok: bool) -> &'static str {
    if ok { "ok" } else { "unreachable" }
}

async fn check_database(state: &AppState) -> bool {
    let query = sqlx::query("SELECT 1").execute(&state.pool);
    matches!(tokio::time::timeout(CHECK_TIMEOUT, query).await, Ok(Ok(_)))
}

async fn check_redis(state: &AppState) -> bool {
    let mut redis = state.redis.clone();
    let command = redis::cmd("PING");
    let ping = command.query_async::<String>(&mut redis);
    matches!(tokio::time::timeout(CHECK_TIMEOUT, ping).await, Ok(Ok(_)))
}

async fn check_sqs(state: &AppState) -> bool {
    let list = state
        .sqs
        .list_queues()
        .queue_name_prefix(&state.settings.sqs.queue_prefix)
        .max_results(1)
        .send();
    matches!(tokio::time::timeout(CHECK_TIMEOUT, list).await, Ok(Ok(_)))
}
