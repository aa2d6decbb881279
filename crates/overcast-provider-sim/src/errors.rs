//! The simulator's refusals, in the terms the AWS backend reports EC2's, S3's, Secrets
//! Manager's, SSM's and ECS's: the same class, overcast code and field, with the backend's
//! own code beside them, so core sees from the simulator what it would see from AWS.

use overcast_provider::{ProviderError, ProviderErrorKind as Kind};

/// A refusal with the backend's code for it.
pub(crate) fn refusal(
    kind: Kind,
    code: &'static str,
    backend_code: &str,
    message: impl Into<String>,
) -> ProviderError {
    let mut error = ProviderError::new(kind, code, message);
    error.backend_code = Some(backend_code.into());
    error
}

/// Bad input, naming the field at fault.
pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ProviderError {
    refusal(
        Kind::InvalidInput,
        "invalid_input",
        "InvalidParameterValue",
        message,
    )
    .with_field(field)
}

/// Input Secrets Manager or SSM refuses before it acts, naming the field at fault.
pub(crate) fn validation(field: &'static str, message: impl Into<String>) -> ProviderError {
    refusal(
        Kind::InvalidInput,
        "invalid_input",
        "ValidationException",
        message,
    )
    .with_field(field)
}

pub(crate) fn unknown_region(region: &str, environment: &str, regions: &[String]) -> ProviderError {
    ProviderError::new(
        Kind::InvalidInput,
        "unknown_region",
        format!(
            "region `{region}` is not one of environment {environment}'s regions ({})",
            regions.join(", ")
        ),
    )
    .with_field("region")
}

pub(crate) fn instance_not_found(id: &str) -> ProviderError {
    refusal(
        Kind::NotFound,
        "instance_not_found",
        "InvalidInstanceID.NotFound",
        format!("The instance ID '{id}' does not exist"),
    )
}

/// EC2's refusal of an action the instance's state does not allow.
pub(crate) fn wrong_state(id: &str, state: &str, action: &str) -> ProviderError {
    refusal(
        Kind::Conflict,
        "wrong_state",
        "IncorrectInstanceState",
        format!("The instance '{id}' is {state}, not in a state from which it can be {action}."),
    )
}

pub(crate) fn image_not_found(id: &str) -> ProviderError {
    refusal(
        Kind::InvalidInput,
        "image_not_found",
        "InvalidAMIID.NotFound",
        format!("The image id '[{id}]' does not exist"),
    )
    .with_field("image")
}

pub(crate) fn group_not_found(id: &str) -> ProviderError {
    refusal(
        Kind::InvalidInput,
        "security_group_not_found",
        "InvalidGroup.NotFound",
        format!("The security group '{id}' does not exist"),
    )
    .with_field("security_groups")
}

pub(crate) fn key_pair_not_found(name: &str) -> ProviderError {
    refusal(
        Kind::InvalidInput,
        "key_pair_not_found",
        "InvalidKeyPair.NotFound",
        format!("The key pair '{name}' does not exist"),
    )
    .with_field("key_pair")
}

pub(crate) fn bucket_not_found(name: &str) -> ProviderError {
    refusal(
        Kind::NotFound,
        "bucket_not_found",
        "NoSuchBucket",
        format!("The specified bucket does not exist: {name}"),
    )
}

/// A resource another one still uses (EC2's `DependencyViolation`).
pub(crate) fn in_use(message: impl Into<String>) -> ProviderError {
    refusal(Kind::Conflict, "in_use", "DependencyViolation", message)
}
