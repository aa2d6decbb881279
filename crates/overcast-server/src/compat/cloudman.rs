//! CloudMan's routes (`/ec2/...`, `/s3/...`): its dashed keys from a JSON body or the query
//! string, its 14-region check, its 400 texts and its 200 `{"message": ...}` answers,
//! served in the one environment `[compat.cloudman]` names, with the stage in that
//! environment's stage tag (CloudMan's fleets keep it in `config`). Create and `POST /s3`
//! do what CloudMan's README promises (its code crashed); its other bugs are not copied
//! (CONTRACTS.md §1).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use overcast_core::auth::Principal;
use overcast_core::buckets::CreateBucketRequest;
use overcast_core::compute::{
    BulkAction, BulkOutcome, BulkRequest, CreateInstancesRequest, InstanceActionRequest,
    InstanceQuery, Launch,
};
use overcast_core::config::{Config, RegionMapping};
use overcast_core::images::CreateImageRequest;
use overcast_provider::ObjectQuery;
use overcast_types::{Error, ErrorKind, Instance, InstanceState, Operation, OperationStatus, Role};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::lenient::{self, Fields};
use super::{audited, targets_of, ChangeContext};
use crate::http::family::{AuthScheme, Family, RoutePolicy};
use crate::http::status::status_of;
use crate::native::error::ApiError;
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

/// The regions CloudMan knew (`resources/aws_regions.py`). A region of the mapped
/// environment, or one `[compat.cloudman] regions` maps, is served as well.
const AWS_REGIONS: [&str; 14] = [
    "us-east-2",
    "us-east-1",
    "us-west-1",
    "us-west-2",
    "ap-south-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "ca-central-1",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "sa-east-1",
];

const NOT_A_REGION: &str = "Not a valid AWS Region";
const NO_INSTANCE: &str = "Instance does not exist - have you double checked the region and id?";
const NOTHING_TO_START: &str = "No instances found with that config type - nothing to do";
const NO_BUCKET: &str = "The bucket specified was not found.";
const BUCKET_FAILED: &str =
    "There was an error creating the bucket - perhaps the name is already in use or not DNS compliant";

/// CloudMan's family: an overcast bearer token (CloudMan had no authentication), reads for
/// viewers, changes for operators and audited, errors as `{"message": ...}`.
pub struct CloudMan;

impl Family for CloudMan {
    fn auth(&self) -> AuthScheme {
        AuthScheme::Bearer
    }

    fn policy(&self, method: &Method, _route: &str, _config: &Config) -> RoutePolicy {
        if *method == Method::GET {
            RoutePolicy::read(Role::Viewer)
        } else {
            RoutePolicy::audited(Role::Operator)
        }
    }

    fn error(&self, error: Error) -> Response {
        error_answer(error)
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ec2/create/{region}", post(create))
        .route("/ec2/promote/{region}", post(promote))
        .route("/ec2/stop/{region}", post(stop))
        .route("/ec2/start/{region}", post(start))
        .route("/ec2/image/new/{region}", post(image))
        .route("/ec2/all/{region}/{config}", get(list))
        .route("/ec2/{region}/{instance_id}", get(show))
        .route("/s3/all", get(buckets))
        .route("/s3/{bucket}", get(bucket))
        .route("/s3", post(create_bucket))
}

/// A CloudMan answer: JSON as Flask-RESTful wrote it in debug mode (indented by four
/// spaces, a trailing newline).
fn answer(status: StatusCode, value: &Value) -> Response {
    let mut text = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut text, formatter);
    if value.serialize(&mut serializer).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    text.push(b'\n');
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// CloudMan's 200 `{"message": ...}`: how it answered everything but bad input.
fn message(text: impl Into<String>) -> Response {
    answer(StatusCode::OK, &json!({ "message": text.into() }))
}

/// Bad input as CloudMan's request parser answered it, `{"message": {"<key>": "<text>"}}`
/// (the first bad key only); every other error with its status and `{"message": ...}`.
fn error_answer(error: Error) -> Response {
    let status = status_of(error.kind);
    match (error.kind, &error.field) {
        (ErrorKind::InvalidInput, Some(field)) => {
            answer(status, &json!({ "message": { field: error.message } }))
        }
        _ => answer(status, &json!({ "message": error.message })),
    }
}

/// A handler's outcome: an answer, or an error CloudMan's way.
fn respond(outcome: Result<Response, Error>) -> Response {
    outcome.unwrap_or_else(error_answer)
}

/// The environment CloudMan's routes act in, or why there is none.
fn mapping(state: &AppState) -> Result<&RegionMapping, Error> {
    state.core.config().compat.cloudman.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            "compat_not_configured",
            "CloudMan's routes are not set up on this server: name an environment in [compat.cloudman]",
        )
    })
}

/// The environment and the region of it that CloudMan's `<region>` stands for; `None`
/// when CloudMan would have said it is not a valid region.
fn served_region(state: &AppState, asked: &str) -> Result<Option<(String, String)>, Error> {
    let mapping = mapping(state)?;
    let env = mapping.environment.clone();
    let served = state.core.region_names(&env)?;
    let known = AWS_REGIONS.contains(&asked)
        || mapping.regions.contains_key(asked)
        || served.iter().any(|r| r == asked);
    Ok(known
        .then(|| mapping.region(asked, &served))
        .flatten()
        .map(|region| (env, region)))
}

/// The request's values: a JSON body (with `Content-Type: application/json`) or a form,
/// then the query string, as Flask-RESTful's parser merged them.
fn fields(headers: &HeaderMap, query: Option<&str>, body: &Bytes) -> Result<Fields, Error> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let mut fields = if is_json && !body.iter().all(u8::is_ascii_whitespace) {
        let value = lenient::parse_json(body).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                "invalid_input",
                format!("Failed to decode JSON object: {e}"),
            )
        })?;
        Fields::from_json(value)
    } else {
        let mut fields = Fields::default();
        if let Ok(form) = std::str::from_utf8(body) {
            fields.add_pairs(form)?;
        }
        fields
    };
    fields.add_pairs(query.unwrap_or(""))?;
    Ok(fields)
}

/// A required value, or CloudMan's 400 with its help text.
fn required(fields: &Fields, key: &str, help: &str) -> Result<String, Error> {
    fields.text(key).ok_or_else(|| Error::invalid(key, help))
}

/// The stages as Python printed a list, for CloudMan's tags help text.
fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// What a CloudMan change reads: the caller, the `<region>` of its path (empty on
/// `POST /s3`), and its path, headers, query and body.
struct Change {
    principal: Principal,
    region: Result<String, Error>,
    path: String,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
}

impl FromRequest<AppState> for Change {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Caller(principal) = Caller::from_request_parts(&mut parts, state)
            .await
            .map_err(|e| error_answer(e.0))?;
        let region = ApiPath::<BTreeMap<String, String>>::from_request_parts(&mut parts, state)
            .await
            .map(|ApiPath(mut params)| params.remove("region").unwrap_or_default())
            .map_err(|e| e.0);
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| {
                error_answer(Error::invalid("body", format!("cannot read the body: {e}")))
            })?;
        Ok(Change {
            principal,
            region,
            path: parts.uri.path().to_string(),
            headers: parts.headers,
            query: parts.uri.query().map(str::to_string),
            body,
        })
    }
}

impl Change {
    /// The environment and region CloudMan's `<region>` stands for, and the request's
    /// values; `None` when CloudMan would say the region is not valid, which it said before
    /// it read any value.
    fn open(&self, state: &AppState) -> Result<Option<(String, String, Fields)>, Error> {
        let asked = self.region.clone()?;
        let Some((env, region)) = served_region(state, &asked)? else {
            return Ok(None);
        };
        Ok(Some((env, region, self.values()?)))
    }

    fn values(&self) -> Result<Fields, Error> {
        fields(&self.headers, self.query.as_deref(), &self.body)
    }

    fn context<'s>(&'s self, state: &'s AppState) -> Result<ChangeContext<'s>, Error> {
        ChangeContext::new(
            state,
            &self.principal,
            &self.headers,
            &Method::POST,
            &self.path,
            &self.body,
        )
    }
}

/// Path parameters, refused CloudMan's way when malformed.
fn path<T>(extracted: Result<ApiPath<T>, ApiError>) -> Result<T, Error> {
    extracted.map(|ApiPath(value)| value).map_err(|e| e.0)
}

async fn create(State(state): State<AppState>, change: Change) -> Response {
    respond(
        async {
            let Some((env, region, fields)) = change.open(&state)? else {
                return Ok(message(NOT_A_REGION));
            };
            let image = required(
                &fields,
                "ami-image-id",
                "EC2 requires an image id to be supplied",
            )?;
            let key_pair = required(
                &fields,
                "key-name",
                "EC2 requires the name of the key-pair used to SSH into the instance",
            )?;
            let instance_type =
                required(&fields, "instance-type", "Please specify the instance type")?;
            let policy = state.core.config().stage_policy(&env).clone();
            let tags_help = format!(
                "Tags are required and must be on of the following: {}",
                python_list(&policy.stages)
            );
            let mut tags = fields
                .map("tags")
                .ok_or_else(|| Error::invalid("tags", &tags_help))?;
            let script = required(
                &fields,
                "startup-script",
                "Please supply a startup script for this instance (will be run as root). Separate lines with \\n",
            )?;
            // CloudMan never checked the stage it was given; overcast does, with its text.
            let stage = tags.remove(&policy.tag_key);
            if stage.as_ref().is_some_and(|s| !policy.stages.contains(s)) {
                return Err(Error::invalid("tags", tags_help));
            }
            let request = CreateInstancesRequest {
                image: Some(image),
                instance_type: Some(instance_type),
                key_pair: Some(key_pair),
                stage,
                tags,
                user_data: Some(script),
                region: Some(region),
                ..CreateInstancesRequest::default()
            };
            let cx = change.context(&state)?;
            let launch = state
                .core
                .create_instances(&change.principal, &env, &request, cx.idempotency.as_ref())
                .await
                .map_err(|e| named_as_cloudman(e, &tags_help))?;
            let Launch::Started(operation) = launch else {
                return Ok(message("dry run: nothing was launched"));
            };
            let operation = cx.settle(&operation, cx.default_wait()).await?;
            let response = match (operation.status, targets_of(&operation).first()) {
                (OperationStatus::Succeeded, Some(id)) => answer(
                    StatusCode::OK,
                    &json!({"instance": {"details": [{"instance_id": id}]}}),
                ),
                (OperationStatus::Failed | OperationStatus::Cancelled, _) => message(format!(
                    "The instance could not be created: {} (operation {})",
                    failure_of(&operation),
                    operation.id
                )),
                _ => message(format!(
                    "The instance is still being created: see operation {}",
                    operation.id
                )),
            };
            Ok(audited(response, &operation))
        }
        .await,
    )
}

/// A core refusal of a create, named by CloudMan's keys.
fn named_as_cloudman(mut error: Error, tags_help: &str) -> Error {
    let field = match error.field.as_deref() {
        Some("image") => "ami-image-id",
        Some("key_pair") => "key-name",
        Some("instance_type") => "instance-type",
        Some("user_data") => "startup-script",
        Some("stage") => {
            error.message = tags_help.to_string();
            "tags"
        }
        Some("tags") => "tags",
        _ => return error,
    };
    error.field = Some(field.into());
    error
}

/// Why an operation failed, in one line.
fn failure_of(operation: &Operation) -> String {
    operation
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_else(|| format!("it was {}", operation.status.as_str()))
}

async fn promote(State(state): State<AppState>, change: Change) -> Response {
    respond(
        async {
            let Some((env, served, fields)) = change.open(&state)? else {
                return Ok(message(NOT_A_REGION));
            };
            let stage = required(
                &fields,
                "config-type",
                "A config type is required to promote an instance",
            )?;
            let cx = change.context(&state)?;
            match fields.text("instance-id") {
                Some(id) => promote_one(&cx, &env, &served, &id).await,
                None => promote_stage(&cx, &env, &served, &stage).await,
            }
        }
        .await,
    )
}

/// Promotes one instance from the stage it is really in (CloudMan took the request's word
/// for it).
async fn promote_one(
    cx: &ChangeContext<'_>,
    env: &str,
    region: &str,
    id: &str,
) -> Result<Response, Error> {
    if instance_in_region(cx.state, cx.principal, env, region, id)
        .await?
        .is_none()
    {
        return Ok(message(NO_INSTANCE));
    }
    let request = InstanceActionRequest {
        action: BulkAction::Promote,
        force: false,
        to_stage: None,
    };
    let started = cx
        .state
        .core
        .instance_action(cx.principal, env, id, request, cx.idempotency.as_ref())
        .await;
    let operation = match started {
        Ok(operation) => operation,
        Err(e) if e.code == "cannot_promote" => {
            return Ok(message(format!("{} - nothing to do", e.message)))
        }
        Err(e) => return Err(e),
    };
    let operation = cx.settle(&operation, cx.default_wait()).await?;
    Ok(audited(promoted(&operation), &operation))
}

/// The instance `id` if the caller may see it and it is in `region`; `None` where CloudMan
/// said it did not exist.
async fn instance_in_region(
    state: &AppState,
    principal: &Principal,
    env: &str,
    region: &str,
    id: &str,
) -> Result<Option<Instance>, Error> {
    match state.core.instance(principal, env, id).await {
        Ok(instance) => Ok((instance.region == region).then_some(instance)),
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::InvalidInput) => Ok(None),
        Err(e) => Err(e),
    }
}

/// CloudMan's answer to a promotion: the promoted instances as Python printed boto's.
fn promoted(operation: &Operation) -> Response {
    if operation.status != OperationStatus::Succeeded {
        tracing::warn!(operation = %operation.id, "a CloudMan promotion did not succeed");
        return message("An error has occurred adding and removing tags.");
    }
    let listed: Vec<String> = targets_of(operation)
        .iter()
        .map(|id| format!("Instance:{id}"))
        .collect();
    message(format!(
        "Instances: [{}] have been promoted",
        listed.join(", ")
    ))
}

/// Promotes every instance of a stage in the region that is not gone (CloudMan re-tagged
/// terminated ones too, and blanked the tag for a stage it did not know).
async fn promote_stage(
    cx: &ChangeContext<'_>,
    env: &str,
    region: &str,
    stage: &str,
) -> Result<Response, Error> {
    let request = BulkRequest {
        stage: Some(stage.to_string()),
        region: Some(region.to_string()),
        ..BulkRequest::default()
    };
    check_stage(cx.state, env, stage)?;
    let outcome = cx
        .state
        .core
        .bulk(
            cx.principal,
            env,
            BulkAction::Promote,
            &request,
            cx.idempotency.as_ref(),
        )
        .await?;
    match outcome {
        BulkOutcome::Planned(plan) if plan.skipped.is_empty() => Ok(message(
            "No instances for that config type exist - nothing to do",
        )),
        BulkOutcome::Planned(plan) => Ok(message(format!(
            "Instances in {stage} config mode cannot be promoted ({}) - nothing to do",
            plan.skipped[0].reason
        ))),
        BulkOutcome::Started(operation) => {
            let operation = cx.settle(&operation, cx.default_wait()).await?;
            Ok(audited(promoted(&operation), &operation))
        }
    }
}

/// A `config-type` must be a stage of the environment: a 400 naming it, not a blank tag.
fn check_stage(state: &AppState, env: &str, stage: &str) -> Result<(), Error> {
    let policy = state.core.config().stage_policy(env);
    if policy.stages.iter().any(|s| s == stage) {
        Ok(())
    } else {
        Err(Error::invalid(
            "config-type",
            format!(
                "`{stage}` is not a config type here; use one of {}",
                python_list(&policy.stages)
            ),
        ))
    }
}

async fn stop(State(state): State<AppState>, change: Change) -> Response {
    let lifecycle = Lifecycle {
        action: BulkAction::Stop,
        from: InstanceState::Running,
        help: "A config type is required to stop an instance",
        done: "shutting down",
        failed: "Instance could not be shut down",
    };
    respond(lifecycle.run(&state, &change).await)
}

async fn start(State(state): State<AppState>, change: Change) -> Response {
    let lifecycle = Lifecycle {
        action: BulkAction::Start,
        from: InstanceState::Stopped,
        help: "A config type is required to start an instance",
        done: "starting up",
        failed: "Instance could not be started",
    };
    respond(lifecycle.run(&state, &change).await)
}

/// Stop or start: every instance of a stage in the region that is in the `from` state.
struct Lifecycle {
    action: BulkAction,
    from: InstanceState,
    help: &'static str,
    done: &'static str,
    failed: &'static str,
}

impl Lifecycle {
    async fn run(&self, state: &AppState, change: &Change) -> Result<Response, Error> {
        let Some((env, served, fields)) = change.open(state)? else {
            return Ok(message(NOT_A_REGION));
        };
        let stage = required(&fields, "config-type", self.help)?;
        check_stage(state, &env, &stage)?;
        let cx = change.context(state)?;
        let request = BulkRequest {
            stage: Some(stage.clone()),
            state: Some(self.from),
            region: Some(served),
            // A CloudMan client cannot confirm; naming the stage is its confirmation.
            confirm: Some(format!("{env}/{stage}")),
            ..BulkRequest::default()
        };
        let outcome = state
            .core
            .bulk(
                &change.principal,
                &env,
                self.action,
                &request,
                cx.idempotency.as_ref(),
            )
            .await?;
        let BulkOutcome::Started(operation) = outcome else {
            // CloudMan reported an empty stop as a failure; nothing to do is not one.
            return Ok(message(NOTHING_TO_START));
        };
        let operation = cx.settle(&operation, cx.default_wait()).await?;
        let response = match operation.status {
            OperationStatus::Failed | OperationStatus::Cancelled => {
                tracing::warn!(operation = %operation.id, "a CloudMan {} did not succeed", self.action.name());
                message(self.failed)
            }
            // Still going is what CloudMan said at once: the instances are on their way.
            _ => message(format!("Instances in {stage} config mode {}", self.done)),
        };
        Ok(audited(response, &operation))
    }
}

async fn image(State(state): State<AppState>, change: Change) -> Response {
    respond(
        async {
            let Some((env, served, fields)) = change.open(&state)? else {
                return Ok(message(NOT_A_REGION));
            };
            let id = required(
                &fields,
                "instance-id",
                "An instance id is required to create an image",
            )?;
            let Some(instance) =
                instance_in_region(&state, &change.principal, &env, &served, &id).await?
            else {
                return Ok(message(NO_INSTANCE));
            };
            let tag_key = &state.core.config().stage_policy(&env).tag_key;
            let Some(stage) = instance.tags.get(tag_key) else {
                return Ok(message(format!(
                    "Instance {id} has no {tag_key} tag to name its image after - nothing was created"
                )));
            };
            let cx = change.context(&state)?;
            let name = format!("{stage}-image");
            let copy = format!("{stage}-image-copy");
            let (operation, is_copy) = match make_image(&cx, &env, &id, &name).await {
                Err(e) if e.code == "image_name_taken" => {
                    (make_image(&cx, &env, &id, &copy).await?, true)
                }
                made => (made?, false),
            };
            let operation = cx.settle(&operation, cx.default_wait()).await?;
            let image = operation
                .results
                .first()
                .and_then(|r| r.detail.as_ref())
                .and_then(|d| d["id"].as_str())
                .map(str::to_string);
            let response = match (operation.status, image) {
                (OperationStatus::Succeeded, Some(image)) if is_copy => message(format!(
                    "{name} already exists - creating a copy: {image}"
                )),
                (OperationStatus::Succeeded, Some(image)) => {
                    message(format!("Created image: {image} for instance {id}"))
                }
                (OperationStatus::Failed | OperationStatus::Cancelled, _) => message(format!(
                    "The image could not be created: {} (operation {})",
                    failure_of(&operation),
                    operation.id
                )),
                _ => message(format!(
                    "The image is still being created: see operation {}",
                    operation.id
                )),
            };
            Ok(audited(response, &operation))
        }
        .await,
    )
}

/// Images the instance itself (CloudMan's "copy" copied its source image instead), and
/// says so: CloudMan let AWS reboot the instance silently; overcast does too, as an image
/// of a running disk may be inconsistent otherwise.
async fn make_image(
    cx: &ChangeContext<'_>,
    env: &str,
    instance_id: &str,
    name: &str,
) -> Result<Operation, Error> {
    let request = CreateImageRequest {
        instance_id: instance_id.to_string(),
        name: name.to_string(),
        description: Some(format!("made through CloudMan's route from {instance_id}")),
        no_reboot: false,
        tags: Default::default(),
    };
    cx.state
        .core
        .create_image(cx.principal, env, &request, cx.idempotency.as_ref())
        .await
}

/// An instance as CloudMan listed it.
fn instance_view(instance: &Instance) -> Value {
    let launch_time = instance
        .launched_at
        .map(|t| {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default();
    json!({
        "instance_id": instance.id,
        "type": instance.instance_type.clone().unwrap_or_default(),
        "state": instance.state.as_str(),
        // overcast keeps no public DNS name; boto's empty `dnsName` was "" too.
        "public_dns_name": "",
        "launch_time": launch_time,
    })
}

async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    params: Result<ApiPath<(String, String)>, ApiError>,
) -> Response {
    respond(
        async {
            let (region, stage) = path(params)?;
            let Some((env, served)) = served_region(&state, &region)? else {
                return Ok(message(NOT_A_REGION));
            };
            let mut query = InstanceQuery {
                stage: Some(stage),
                region: Some(served),
                limit: 500,
                ..InstanceQuery::default()
            };
            let mut instances = Vec::new();
            loop {
                let page = state
                    .core
                    .instances(&principal, &env, query.clone())
                    .await?;
                instances.extend(page.items.iter().map(instance_view));
                match page.next_page_token {
                    Some(token) => query.page_token = Some(token),
                    None => break,
                }
            }
            Ok(answer(StatusCode::OK, &json!({ "instances": instances })))
        }
        .await,
    )
}

async fn show(
    State(state): State<AppState>,
    Caller(principal): Caller,
    params: Result<ApiPath<(String, String)>, ApiError>,
) -> Response {
    respond(
        async {
            let (region, id) = path(params)?;
            let Some((env, served)) = served_region(&state, &region)? else {
                return Ok(message(NOT_A_REGION));
            };
            Ok(
                match instance_in_region(&state, &principal, &env, &served, &id).await? {
                    Some(instance) => answer(
                        StatusCode::OK,
                        &json!({"instance": id, "details": [instance_view(&instance)]}),
                    ),
                    None => message(NO_INSTANCE),
                },
            )
        }
        .await,
    )
}

async fn buckets(State(state): State<AppState>, Caller(principal): Caller) -> Response {
    respond(
        async {
            let env = &mapping(&state)?.environment;
            let buckets = state.core.buckets(&principal, env, false).await?;
            let listed: Vec<Value> = buckets
                .items
                .iter()
                .map(|b| json!({ "bucket_name": b.name }))
                .collect();
            Ok(answer(StatusCode::OK, &json!({ "buckets": listed })))
        }
        .await,
    )
}

async fn bucket(
    State(state): State<AppState>,
    Caller(principal): Caller,
    name: Result<ApiPath<String>, ApiError>,
) -> Response {
    respond(
        async {
            let name = path(name)?;
            let env = &mapping(&state)?.environment;
            let mut query = ObjectQuery {
                limit: 1000,
                ..ObjectQuery::default()
            };
            let mut contents = Vec::new();
            loop {
                let listing = match state.core.objects(&principal, env, &name, &query).await {
                    Ok(listing) => listing,
                    Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::InvalidInput) => {
                        return Ok(message(NO_BUCKET))
                    }
                    Err(e) => return Err(e),
                };
                contents.extend(listing.items.iter().map(|o| json!({ "filename": o.key })));
                match listing.next_page_token {
                    Some(token) => query.page_token = Some(token),
                    None => break,
                }
            }
            Ok(answer(
                StatusCode::OK,
                &json!({"bucket_name": name, "contents": contents}),
            ))
        }
        .await,
    )
}

async fn create_bucket(State(state): State<AppState>, change: Change) -> Response {
    respond(
        async {
            let env = mapping(&state)?.environment.clone();
            let fields = change.values()?;
            let name = required(
                &fields,
                "bucket-name",
                "Please specify the name of the S3 bucket to create",
            )?;
            let cx = change.context(&state)?;
            let request = CreateBucketRequest {
                name: name.clone(),
                region: None,
                tags: Default::default(),
            };
            let operation = match state
                .core
                .create_bucket(&change.principal, &env, &request, cx.idempotency.as_ref())
                .await
            {
                Ok(operation) => operation,
                Err(e) if matches!(e.kind, ErrorKind::InvalidInput | ErrorKind::Conflict) => {
                    tracing::info!(bucket = %name, error = %e.message, "a CloudMan bucket create was refused");
                    return Ok(message(BUCKET_FAILED));
                }
                Err(e) => return Err(e),
            };
            let operation = cx.settle(&operation, cx.default_wait()).await?;
            let response = match operation.status {
                OperationStatus::Succeeded => answer(
                    StatusCode::OK,
                    &json!({"bucket_name": name, "details": [], "contents": []}),
                ),
                OperationStatus::Failed | OperationStatus::Cancelled => message(BUCKET_FAILED),
                _ => message(format!(
                    "The bucket is still being created: see operation {}",
                    operation.id
                )),
            };
            Ok(audited(response, &operation))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_take_cloudmans_shape() {
        let response = error_answer(Error::invalid("config-type", "A config type is required"));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = error_answer(Error::not_found("key_pair", "kp"));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            python_list(&["dev".into(), "test".into()]),
            "['dev', 'test']"
        );
    }
}
