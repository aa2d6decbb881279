//! Records the API shows: operations (every change overcast makes), audit entries and tokens.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{Error, ErrorKind, Role};

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl OperationStatus {
    pub const ALL: [OperationStatus; 5] = [
        OperationStatus::Pending,
        OperationStatus::Running,
        OperationStatus::Succeeded,
        OperationStatus::Failed,
        OperationStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Pending => "pending",
            OperationStatus::Running => "running",
            OperationStatus::Succeeded => "succeeded",
            OperationStatus::Failed => "failed",
            OperationStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("`{s}` is not a status; use pending, running, succeeded, failed or cancelled"),
                )
            })
    }

    /// Whether the operation has ended and will not change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OperationStatus::Succeeded | OperationStatus::Failed | OperationStatus::Cancelled
        )
    }
}

/// How far an operation has come: `done` of `total` targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// What happened to one target of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetOutcome {
    Done,
    Skipped,
    Failed,
}

/// The result for one target (an instance, a token, ...) of an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TargetResult {
    pub target: String,
    pub outcome: TargetOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What the step produced, e.g. the created resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl TargetResult {
    /// A target acted on as asked.
    pub fn done(target: impl Into<String>) -> Self {
        TargetResult {
            target: target.into(),
            outcome: TargetOutcome::Done,
            message: None,
            detail: None,
        }
    }

    /// A target left alone, and why.
    pub fn skipped(target: impl Into<String>, reason: impl Into<String>) -> Self {
        TargetResult {
            outcome: TargetOutcome::Skipped,
            message: Some(reason.into()),
            ..TargetResult::done(target)
        }
    }

    /// A target whose action failed, and why.
    pub fn failed(target: impl Into<String>, reason: impl Into<String>) -> Self {
        TargetResult {
            outcome: TargetOutcome::Failed,
            message: Some(reason.into()),
            ..TargetResult::done(target)
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Shows what the step produced (the created resource, say) with the result.
    pub fn with_detail<T: Serialize>(mut self, detail: &T) -> Result<Self, Error> {
        self.detail =
            Some(serde_json::to_value(detail).map_err(|e| Error::internal(e.to_string()))?);
        Ok(self)
    }
}

/// Why an operation failed: the error's class, code, message and, for bad input, field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperationError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
}

impl From<&Error> for OperationError {
    fn from(e: &Error) -> Self {
        OperationError {
            code: e.code.clone(),
            message: e.message.clone(),
            field: e.field.clone(),
            kind: Some(e.kind),
        }
    }
}

/// A recorded failure as an error again (one recorded before kinds were kept is internal).
impl From<&OperationError> for Error {
    fn from(e: &OperationError) -> Self {
        Error {
            field: e.field.clone(),
            ..Error::new(
                e.kind.unwrap_or(crate::ErrorKind::Internal),
                e.code.clone(),
                e.message.clone(),
            )
        }
    }
}

/// A recorded change: persisted before any backend call, then run, resumed after a restart,
/// and kept as history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Operation {
    pub id: String,
    /// What it does, e.g. `token.create`, `instance.start`.
    pub kind: String,
    pub org: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// What it acts on, e.g. a token id or `aws-dev/instances?stage=dev`.
    pub target: String,
    /// The name of the token that asked for it.
    pub requested_by: String,
    pub status: OperationStatus,
    pub progress: Progress,
    pub results: Vec<TargetResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<OperationError>,
    pub cancel_requested: bool,
    /// Calls made to the backend so far, across every run of the operation.
    #[serde(default)]
    pub backend_calls: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
    /// The request as the executor needs it. Never holds a secret; not shown by the API.
    #[serde(skip)]
    pub input: Value,
}

impl Operation {
    /// A new operation of `kind` on `target`, as recorded before anything acts: pending,
    /// with no progress, results or backend calls yet.
    pub fn pending(
        id: String,
        kind: &str,
        org: &str,
        target: String,
        requested_by: &str,
        created_at: OffsetDateTime,
        input: Value,
    ) -> Self {
        Operation {
            id,
            kind: kind.into(),
            org: org.into(),
            environment: None,
            target,
            requested_by: requested_by.into(),
            status: OperationStatus::Pending,
            progress: Progress::default(),
            results: vec![],
            error: None,
            cancel_requested: false,
            backend_calls: 0,
            created_at,
            started_at: None,
            finished_at: None,
            input,
        }
    }
}

/// One line of the append-only audit log: an authenticated change and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub token_id: String,
    pub token_name: String,
    pub org: String,
    pub role: Role,
    pub method: String,
    /// The route as declared, e.g. `/v1/tokens/{id}`.
    pub route: String,
    /// The concrete path or resource acted on.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// `succeeded`, `accepted`, `denied` or `failed`.
    pub outcome: String,
    pub status_code: u16,
    pub request_id: String,
}

/// An access key of the EC2-compatible endpoint, as listed: never its secret. Requests
/// signed with it act as its token, in its environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessKey {
    /// 20 upper-case characters, like AWS's access key ids.
    pub id: String,
    pub token_id: String,
    /// The org of its token.
    pub org: String,
    pub environment: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub org: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    /// The name of the token that created it; `bootstrap` for the first admin token.
    pub created_by: String,
}
