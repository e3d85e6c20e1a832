//! `POST /api/run?namespace=NS&healthcheck=NAME`, v3's "run this check now", on every
//! replica, but authenticated: the caller's bearer token is reviewed by the API server
//! (TokenReview), and the caller must be allowed to `update` that khcheck
//! (SubjectAccessReview). An accepted request sets the check's run-now annotation, the one
//! mechanism behind `kuberhealthy run-now` and the annotation set by hand; the leader
//! honours each value once.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use crate::api::{KuberhealthyCheck, RUN_REQUESTED_AT};
use crate::controller::api_error;
use crate::controller::cache::Cache;
use crate::controller::reply::json_error;

pub const PATH: &str = "/api/run";

#[derive(Clone)]
pub struct RunNowContext {
    pub cache: Cache,
    pub client: kube::Client,
}

pub fn router(ctx: RunNowContext) -> Router {
    let method_not_allowed = || async {
        json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "a run is requested with POST /api/run?namespace=NS&healthcheck=NAME",
        )
    };
    Router::new()
        .route(PATH, post(request_run).fallback(method_not_allowed))
        .with_state(ctx)
}

/// The merge patch that asks for a run now: the run-now annotation set to `at`.
pub fn run_request_patch(at: Timestamp) -> serde_json::Value {
    json!({"metadata": {"annotations": {RUN_REQUESTED_AT: at.to_string()}}})
}

/// Asks for a run of `namespace/name` now, as `kuberhealthy run-now` and `/api/run` do.
pub async fn request(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Timestamp, kube::Error> {
    let at = Timestamp::now();
    let api: Api<KuberhealthyCheck> = Api::namespaced(client, namespace);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(run_request_patch(at)),
    )
    .await?;
    Ok(at)
}

async fn request_run(
    State(ctx): State<RunNowContext>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let (Some(namespace), Some(name)) = (param("namespace"), param("healthcheck")) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the namespace and healthcheck query parameters are required: POST /api/run?namespace=NS&healthcheck=NAME",
        );
    };
    let Some(token) = bearer(&headers) else {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "send your Kubernetes bearer token: Authorization: Bearer <token> (for example kubectl create token NAME)",
        );
    };
    let user = match review(&ctx.client, token).await {
        Ok(Ok(user)) => user,
        Ok(Err(reason)) => {
            return json_error(
                StatusCode::UNAUTHORIZED,
                format!("the API server did not accept the bearer token: {reason}"),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot review a bearer token for /api/run");
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "cannot review the bearer token ({}); the controller needs create on tokenreviews and subjectaccessreviews",
                    api_error::reason(&e)
                ),
            );
        }
    };
    let who = user.username.clone().unwrap_or_else(|| "the caller".into());
    match may_update(&ctx.client, &user, namespace, name).await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => {
            return json_error(
                StatusCode::FORBIDDEN,
                format!(
                    "{who} may not update khcheck {namespace}/{name}{reason}; a run now needs update on khchecks"
                ),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot review an access for /api/run");
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot review the access ({})", api_error::reason(&e)),
            );
        }
    }
    let key = crate::api::key_of(namespace, name);
    let Some(check) = ctx
        .cache
        .checks
        .get(&ObjectRef::new(name).within(namespace))
    else {
        return json_error(StatusCode::NOT_FOUND, format!("no khcheck {key}"));
    };
    if check.suspended() {
        return json_error(
            StatusCode::CONFLICT,
            format!("{key} is suspended (spec.suspend: true); it runs nothing until resumed"),
        );
    }
    let state = ctx
        .cache
        .states
        .get(&ObjectRef::new(name).within(namespace));
    if let Some(s) = state.filter(|s| s.spec.run_in_flight()) {
        let deadline = s
            .spec
            .run_deadline
            .map(|d| format!(", deadline {d}"))
            .unwrap_or_default();
        return json_error(
            StatusCode::CONFLICT,
            format!(
                "{key} has a run in flight (run {}{deadline}); ask again once it has finished",
                s.spec.uuid
            ),
        );
    }
    match request(ctx.client.clone(), namespace, name).await {
        Ok(at) => {
            tracing::info!(check = %key, user = %who, "a run was requested through /api/run");
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({
                    "message": format!("a run of {key} was requested; the leader starts it shortly"),
                    "requestedAt": at.to_string(),
                })),
            )
                .into_response()
        }
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot request the run of {key}: {}", api_error::reason(&e)),
        ),
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Who the token belongs to, or why the API server refused it.
async fn review(
    client: &kube::Client,
    token: &str,
) -> Result<Result<UserInfo, String>, kube::Error> {
    let api: Api<TokenReview> = Api::all(client.clone());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    let status = api
        .create(&PostParams::default(), &review)
        .await?
        .status
        .unwrap_or_default();
    Ok(match (status.authenticated, status.user) {
        (Some(true), Some(user)) => Ok(user),
        _ => Err(status
            .error
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "the token is not valid".into())),
    })
}

/// Whether `user` may update khcheck `namespace/name`; the refusal's reason if not.
async fn may_update(
    client: &kube::Client,
    user: &UserInfo,
    namespace: &str,
    name: &str,
) -> Result<Result<(), String>, kube::Error> {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                verb: Some("update".into()),
                group: Some("comcast.github.io".into()),
                resource: Some("khchecks".into()),
                name: Some(name.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let status = api
        .create(&PostParams::default(), &review)
        .await?
        .status
        .unwrap_or_default();
    Ok(if status.allowed {
        Ok(())
    } else {
        Err(status
            .reason
            .filter(|r| !r.is_empty())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer abc.def".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc.def"));
        headers.insert(header::AUTHORIZATION, "bearer   xyz ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("xyz"));
        headers.insert(header::AUTHORIZATION, "Basic dXNlcg==".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn the_patch_sets_only_the_annotation() {
        let at: Timestamp = "2026-01-01T10:20:00.123Z".parse().unwrap();
        assert_eq!(
            run_request_patch(at),
            json!({"metadata": {"annotations": {"kuberhealthy.github.io/run-requested-at": "2026-01-01T10:20:00.123Z"}}})
        );
    }
}
