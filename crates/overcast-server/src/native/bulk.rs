//! Actions on the instances a selector matches: start, stop, reboot, terminate, promote,
//! tag and untag, planned first, with a dry run and a confirmation guard.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use overcast_core::auth::Principal;
use overcast_core::compute::{BulkAction, BulkOutcome, BulkRequest, Plan};
use overcast_types::Operation;
use serde::Serialize;
use utoipa::ToSchema;

use crate::native::error::{ApiResult, ErrorBody};
use crate::native::extract::Mutation;
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

/// The answer to a dry run, or to a selector with nothing to act on.
#[derive(Serialize, ToSchema)]
pub struct PlanAnswer {
    pub dry_run: bool,
    pub message: String,
    pub plan: Plan,
}

async fn bulk(
    state: &AppState,
    principal: &Principal,
    env: &str,
    action: BulkAction,
    request: &Mutation<BulkRequest>,
) -> ApiResult<Response> {
    let outcome = state
        .core
        .bulk(
            principal,
            env,
            action,
            &request.body,
            request.idempotency.as_ref(),
        )
        .await?;
    match outcome {
        BulkOutcome::Planned(plan) => {
            let message = if request.body.dry_run {
                format!(
                    "dry run: would {} {} instance(s), skip {}; nothing was done",
                    action.name(),
                    plan.targets.len(),
                    plan.skipped.len()
                )
            } else {
                format!(
                    "nothing to {}: no selected instance needs it",
                    action.name()
                )
            };
            Ok(Json(PlanAnswer {
                dry_run: request.body.dry_run,
                message,
                plan,
            })
            .into_response())
        }
        BulkOutcome::Started(operation) => {
            request
                .answer(state, principal, *operation, StatusCode::OK)
                .await
        }
    }
}

macro_rules! bulk_route {
    ($name:ident, $action:expr, $path:literal, $what:literal) => {
        #[doc = concat!($what, " the instances a selector matches, in every region of the environment (an operation that records each target's outcome). `dry_run` returns the plan.")]
        #[utoipa::path(post, path = $path, tag = "bulk", request_body = BulkRequest,
            params(("env" = String, Path, description = "Environment name"),
                   ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the original operation")),
            responses((status = 200, body = PlanAnswer, description = "the plan of a dry run or of nothing to do, or the operation that succeeded"),
                      (status = 202, body = Operation),
                      (status = 400, body = ErrorBody, description = "bad selector, or the confirmation is missing"),
                      (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
        pub async fn $name(
            State(state): State<AppState>,
            Caller(principal): Caller,
            ApiPath(env): ApiPath<String>,
            request: Mutation<BulkRequest>,
        ) -> ApiResult<Response> {
            bulk(&state, &principal, &env, $action, &request).await
        }
    };
}

bulk_route!(
    instance_bulk_start,
    BulkAction::Start,
    "/v1/environments/{env}/instances/start",
    "Starts"
);
bulk_route!(
    instance_bulk_stop,
    BulkAction::Stop,
    "/v1/environments/{env}/instances/stop",
    "Stops"
);
bulk_route!(
    instance_bulk_reboot,
    BulkAction::Reboot,
    "/v1/environments/{env}/instances/reboot",
    "Reboots"
);
bulk_route!(
    instance_bulk_terminate,
    BulkAction::Terminate,
    "/v1/environments/{env}/instances/terminate",
    "Terminates"
);
bulk_route!(
    instance_bulk_promote,
    BulkAction::Promote,
    "/v1/environments/{env}/instances/promote",
    "Promotes (one stage on, or to `to_stage`)"
);
bulk_route!(
    instance_bulk_tag,
    BulkAction::Tag,
    "/v1/environments/{env}/instances/tag",
    "Sets the tags `set` on"
);
bulk_route!(
    instance_bulk_untag,
    BulkAction::Untag,
    "/v1/environments/{env}/instances/untag",
    "Removes the tag `keys` from"
);
