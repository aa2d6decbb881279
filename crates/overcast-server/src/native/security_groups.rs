//! Security groups of an environment and their rules.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use overcast_core::security_groups::{CreateGroupRequest, RuleChange};
use overcast_types::{Operation, Page, Rule, SecurityGroup};

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::{ApiPath, Caller};
use crate::native::extract::{ApiQuery, InventoryQuery, Mutation, NoBody};
use crate::AppState;

/// Security groups the caller may see, with their rules.
#[utoipa::path(get, path = "/v1/environments/{env}/security-groups", tag = "security-groups",
    params(("env" = String, Path, description = "Environment name"), InventoryQuery),
    responses((status = 200, body = Page<SecurityGroup>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn security_group_list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    ApiQuery(query): ApiQuery<InventoryQuery>,
) -> ApiResult<Json<Page<SecurityGroup>>> {
    let page = state
        .core
        .security_groups(&principal, &env, query.region.as_deref(), query.fresh)
        .await?;
    Ok(Json(page))
}

/// Creates a security group (an operation), tagged with its org.
#[utoipa::path(post, path = "/v1/environments/{env}/security-groups", tag = "security-groups", request_body = CreateGroupRequest,
    params(("env" = String, Path, description = "Environment name"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 201, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "a group of that name exists"), (status = 403, body = ErrorBody)))]
pub async fn security_group_create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(env): ApiPath<String>,
    request: Mutation<CreateGroupRequest>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .create_security_group(
            &principal,
            &env,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::CREATED)
        .await
}

#[utoipa::path(get, path = "/v1/environments/{env}/security-groups/{id}", tag = "security-groups",
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Group id")),
    responses((status = 200, body = SecurityGroup), (status = 404, body = ErrorBody)))]
pub async fn security_group_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<SecurityGroup>> {
    Ok(Json(
        state.core.security_group(&principal, &env, &id).await?,
    ))
}

/// Deletes a group (an operation); 409 while an instance or another group's rule uses it.
#[utoipa::path(delete, path = "/v1/environments/{env}/security-groups/{id}", tag = "security-groups",
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Group id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "in use"), (status = 403, body = ErrorBody)))]
pub async fn security_group_delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
    request: Mutation<NoBody>,
) -> ApiResult<Response> {
    let operation = state
        .core
        .delete_security_group(&principal, &env, &id, request.idempotency.as_ref())
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}

/// Adds a rule (an operation); adding a rule that exists is no error.
#[utoipa::path(post, path = "/v1/environments/{env}/security-groups/{id}/rules", tag = "security-groups", request_body = Rule,
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Group id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn security_group_rule_add(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
    request: Mutation<Rule>,
) -> ApiResult<Response> {
    let change = RuleChange::Add(request.body.clone());
    change_rule(state, principal, env, id, request, change).await
}

/// Removes a rule (an operation); removing a rule that is not there is no error.
#[utoipa::path(delete, path = "/v1/environments/{env}/security-groups/{id}/rules", tag = "security-groups", request_body = Rule,
    params(("env" = String, Path, description = "Environment name"), ("id" = String, Path, description = "Group id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
    responses((status = 200, body = Operation), (status = 202, body = Operation), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn security_group_rule_remove(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((env, id)): ApiPath<(String, String)>,
    request: Mutation<Rule>,
) -> ApiResult<Response> {
    let change = RuleChange::Remove(request.body.clone());
    change_rule(state, principal, env, id, request, change).await
}

async fn change_rule(
    state: AppState,
    principal: overcast_core::auth::Principal,
    env: String,
    id: String,
    request: Mutation<Rule>,
    change: RuleChange,
) -> ApiResult<Response> {
    let operation = state
        .core
        .change_rule(&principal, &env, &id, change, request.idempotency.as_ref())
        .await?;
    request
        .answer(&state, &principal, operation, StatusCode::OK)
        .await
}
