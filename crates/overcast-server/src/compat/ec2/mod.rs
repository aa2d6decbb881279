//! The EC2 Query API at `/`: what boto2, boto3, the AWS CLI and Terraform's AWS provider
//! speak, in front of every provider. Requests are signed with SigV4 by an access key
//! bound to a token and an environment; each action becomes the same core call as on
//! `/v1` (so every change is an operation, audited and scoped to the token's org), and
//! answers in EC2's XML. An action not listed here answers `InvalidAction`: nothing is
//! passed through to a cloud ungoverned (`../shared/compat/EC2-API.md`).

mod actions;
mod groups;
mod query;
mod sigv4;
mod xml;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use overcast_core::auth::Principal;
use overcast_core::config::Config;
use overcast_types::{AccessKey, Error, ErrorKind, Operation, Role};
use time::OffsetDateTime;

use crate::http::family::{AuditedOperation, AuthScheme, Family, NotAChange, RoutePolicy};
use crate::http::request_id::current_request_id;
use crate::AppState;
pub use query::Params;
use sigv4::{Received, Refusal};

/// The largest request body the family reads: EC2 requests are small forms.
const MAX_BODY: usize = 1 << 20;

/// The API version answered when a request gives none.
const DEFAULT_VERSION: &str = "2016-11-15";

/// The EC2 family: SigV4 with an overcast access key; every call reaches the handler as a
/// viewer's, each action checks the role it needs through core, and calls that change
/// something are audited.
pub struct Ec2;

impl Family for Ec2 {
    fn auth(&self) -> AuthScheme {
        AuthScheme::SigV4
    }

    fn policy(&self, _method: &Method, _route: &str, _config: &Config) -> RoutePolicy {
        RoutePolicy::audited(Role::Viewer)
    }

    fn error(&self, error: Error) -> Response {
        let (status, code) = ec2_code(&error);
        let body = xml::error(&code, &error.message, &current_request_id());
        (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(call).post(call))
}

/// An error in EC2's terms (kind `InvalidInput`, so a 400, unless `ec2_code` says
/// otherwise for its code).
pub(crate) fn fault(code: &str, message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidInput, code, message)
}

/// overcast's error codes that have an EC2 code of their own.
const CODES: [(&str, &str); 11] = [
    ("instance_not_found", "InvalidInstanceID.NotFound"),
    ("image_not_found", "InvalidAMIID.NotFound"),
    ("security_group_not_found", "InvalidGroup.NotFound"),
    ("key_pair_not_found", "InvalidKeyPair.NotFound"),
    ("security_group_exists", "InvalidGroup.Duplicate"),
    ("key_pair_exists", "InvalidKeyPair.Duplicate"),
    ("in_use", "DependencyViolation"),
    ("wrong_state", "IncorrectInstanceState"),
    ("instance_locked", "IncorrectInstanceState"),
    ("operation_not_permitted", "OperationNotPermitted"),
    ("invalid_instance_type", "InvalidInstanceType"),
];

/// The status and EC2 code of an error: EC2's own codes pass as they are; overcast's are
/// mapped. A client's fault is never a 5xx, since clients retry those.
fn ec2_code(error: &Error) -> (StatusCode, String) {
    let own = error.code.starts_with(|c: char| c.is_ascii_uppercase());
    let mapped = CODES.iter().find(|(ours, _)| *ours == error.code);
    let code = match (error.kind, mapped) {
        _ if own => error.code.clone(),
        (_, Some((_, theirs))) => (*theirs).to_string(),
        (ErrorKind::Unauthenticated, _) => "AuthFailure".into(),
        (ErrorKind::Forbidden, _) => "UnauthorizedOperation".into(),
        (ErrorKind::Unsupported, _) => "UnsupportedOperation".into(),
        (ErrorKind::InsufficientCapacity, _) => "InsufficientInstanceCapacity".into(),
        (ErrorKind::RateLimited, _) => "RequestLimitExceeded".into(),
        (ErrorKind::BackendUnavailable | ErrorKind::BackendTimeout, _) => "Unavailable".into(),
        (ErrorKind::Internal, _) => "InternalError".into(),
        _ => "InvalidParameterValue".into(),
    };
    let status = match code.as_str() {
        "AuthFailure" | "SignatureDoesNotMatch" | "RequestExpired" => StatusCode::UNAUTHORIZED,
        "UnauthorizedOperation" => StatusCode::FORBIDDEN,
        "DryRunOperation" => StatusCode::PRECONDITION_FAILED,
        "RequestLimitExceeded" | "Unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "InternalError" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, code)
}

/// What a verified signature says beyond the caller: the access key, and the region and
/// service the client signed for.
#[derive(Debug, Clone)]
pub struct Signed {
    pub key: AccessKey,
    pub region: String,
    pub service: String,
}

/// Verifies a SigV4-signed request: its time, its access key (bound to a usable token)
/// and its signature over the method, path, query, signed headers and body. Answers the
/// caller and the request, its body read and put back.
pub async fn authenticate(
    state: &AppState,
    request: Request,
) -> Result<(Principal, Request), Error> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        fault(
            "InvalidParameterValue",
            "the request body is larger than 1 MiB",
        )
    })?;
    let received = Received {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body: &bytes,
    };
    let credential = sigv4::credential(&received, OffsetDateTime::now_utc()).map_err(refused)?;
    let (principal, key, secret) = state
        .core
        .access_key_signer(&credential.access_key_id)
        .await?;
    sigv4::check(&received, &credential, &secret).map_err(refused)?;
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(Signed {
        key,
        region: credential.region,
        service: credential.service,
    });
    Ok((principal, request))
}

/// A refused signature as EC2 words it; never the canonical request.
fn refused(refusal: Refusal) -> Error {
    let (code, message) = match refusal {
        Refusal::Missing => (
            "AuthFailure",
            "the request is not signed: sign it with SigV4 and an overcast access key".into(),
        ),
        Refusal::Version2 => (
            "AuthFailure",
            "Signature Version 2 is not supported; use SigV4".into(),
        ),
        Refusal::Malformed(what) => ("AuthFailure", what),
        Refusal::Expired(at) => (
            "RequestExpired",
            format!("the request's time {at} is more than 15 minutes from the server's"),
        ),
        Refusal::Mismatch => (
            "SignatureDoesNotMatch",
            "the request signature does not match: check the secret access key".into(),
        ),
    };
    Error::new(ErrorKind::Unauthenticated, code, message)
}

/// An action's answer: the XML body, and the operation it started, if it changed anything.
pub struct Answer {
    body: xml::Xml,
    operation: Option<Operation>,
    /// The answer's namespace and envelope when it is not EC2's (STS).
    envelope: Envelope,
}

enum Envelope {
    Ec2,
    Sts,
}

impl Answer {
    fn read(body: xml::Xml) -> Answer {
        Answer {
            body,
            operation: None,
            envelope: Envelope::Ec2,
        }
    }

    fn sts(body: xml::Xml) -> Answer {
        Answer {
            body,
            operation: None,
            envelope: Envelope::Sts,
        }
    }

    fn changed(body: xml::Xml, operation: Operation) -> Answer {
        Answer {
            body,
            operation: Some(operation),
            envelope: Envelope::Ec2,
        }
    }
}

/// One EC2 call: its action, read from the query or the form body, run as the signer.
async fn call(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(signed): Extension<Signed>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let params = Params::parse(uri.query().unwrap_or_default().as_bytes(), &body);
    let action = params.text("Action").unwrap_or_default().to_string();
    let version = params
        .text("Version")
        .unwrap_or(DEFAULT_VERSION)
        .to_string();
    let cx = actions::Call {
        state: &state,
        principal: &principal,
        signed: &signed,
        params: &params,
    };
    let answered = actions::run(&cx, &action).await;
    let changes = actions::changes(&action);
    let mut response = match answered {
        Ok(answer) => {
            let request_id = current_request_id();
            let text = match answer.envelope {
                Envelope::Ec2 => xml::answer(&action, &version, &request_id, answer.body),
                Envelope::Sts => xml::sts_answer(&action, &request_id, answer.body),
            };
            let mut response =
                (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], text).into_response();
            if let Some(operation) = answer.operation {
                response
                    .extensions_mut()
                    .insert(AuditedOperation(operation.id));
            }
            response
        }
        Err(error) => Ec2.error(error),
    };
    if !changes {
        response.extensions_mut().insert(NotAChange);
    }
    response
}
