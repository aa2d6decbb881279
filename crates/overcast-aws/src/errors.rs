//! AWS errors in overcast's terms: the backend's code decides the class, overcast's code
//! and, for bad input, the request field at fault. Messages carry the backend's code and
//! request id, never credentials or signatures.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::RequestId;
use overcast_provider::{ProviderError, ProviderErrorKind as Kind};

/// The class, overcast code and field of an EC2 error code.
fn classify(code: &str, message: &str) -> (Kind, &'static str, Option<&'static str>) {
    match code {
        "InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed" => {
            (Kind::NotFound, "instance_not_found", None)
        }
        c if c.starts_with("InvalidAMIID.") => {
            (Kind::InvalidInput, "image_not_found", Some("image"))
        }
        "InvalidKeyPair.NotFound" => (Kind::InvalidInput, "key_pair_not_found", Some("key_pair")),
        "InvalidKeyPair.Duplicate" => (Kind::Conflict, "key_pair_exists", Some("name")),
        "InvalidKeyPair.Format" | "InvalidKey.Format" => {
            (Kind::InvalidInput, "invalid_public_key", Some("public_key"))
        }
        "InvalidGroup.NotFound" | "InvalidGroupId.Malformed" => (
            Kind::InvalidInput,
            "security_group_not_found",
            Some("security_groups"),
        ),
        "InvalidGroup.Duplicate" => (Kind::Conflict, "security_group_exists", Some("name")),
        "DependencyViolation" | "InvalidGroup.InUse" => (Kind::Conflict, "in_use", None),
        "InvalidSubnetID.NotFound" => (Kind::InvalidInput, "subnet_not_found", Some("subnet")),
        "NoSuchBucket" | "NotFound" => (Kind::NotFound, "bucket_not_found", None),
        "ResourceNotFoundException" => (Kind::NotFound, "secret_not_found", None),
        "ClusterNotFoundException" => (Kind::NotFound, "cluster_not_found", None),
        "ServiceNotFoundException" | "ServiceNotActiveException" => {
            (Kind::NotFound, "service_not_found", None)
        }
        "ClusterContainsServicesException" | "ClusterContainsTasksException" => {
            (Kind::Conflict, "cluster_in_use", None)
        }
        // ECS's answer to a request it refuses as malformed or impossible.
        "ClientException" => (Kind::InvalidInput, "invalid_input", None),
        "ServerException" => (Kind::Unavailable, "backend_unavailable", None),
        "ResourceExistsException" => (Kind::Conflict, "secret_exists", Some("name")),
        // Secrets Manager's answer for a secret scheduled for deletion, among others.
        "InvalidRequestException" => (Kind::Conflict, "wrong_state", None),
        "ParameterNotFound" | "ParameterVersionNotFound" => {
            (Kind::NotFound, "parameter_not_found", None)
        }
        "ParameterAlreadyExists" => (Kind::Conflict, "parameter_exists", Some("name")),
        "ParameterLimitExceeded"
        | "HierarchyLevelLimitExceededException"
        | "LimitExceededException" => (Kind::Conflict, "limit_exceeded", None),
        "InvalidKeyId" | "EncryptionFailure" | "DecryptionFailure" => {
            (Kind::InvalidInput, "invalid_kms_key", Some("kms_key_id"))
        }
        "TooManyUpdates" => (Kind::Throttled, "backend_throttled", None),
        "BucketAlreadyExists" | "BucketAlreadyOwnedByYou" => {
            (Kind::Conflict, "bucket_exists", Some("name"))
        }
        "BucketNotEmpty" => (Kind::Conflict, "bucket_not_empty", None),
        "NoSuchKey" => (Kind::NotFound, "object_not_found", None),
        "InvalidRange" => (Kind::RangeNotSatisfiable, "range_not_satisfiable", None),
        "EntityTooLarge" | "EntityTooSmall" => (Kind::InvalidInput, "invalid_object_size", None),
        "InvalidBucketName" => (Kind::InvalidInput, "invalid_bucket_name", Some("name")),
        // S3's answer to a request argument it cannot take, e.g. a continuation token it
        // never gave.
        "InvalidArgument" => (Kind::InvalidInput, "invalid_input", None),
        c if c.starts_with("InvalidInstanceType") => (
            Kind::InvalidInput,
            "invalid_instance_type",
            Some("instance_type"),
        ),
        "IncorrectInstanceState" | "IncorrectState" | "InvalidState" => {
            (Kind::Conflict, "wrong_state", None)
        }
        "OperationNotPermitted" => (Kind::Conflict, "operation_not_permitted", None),
        "UnauthorizedOperation" | "AuthFailure" | "OptInRequired" | "Blocked" => {
            (Kind::Denied, "backend_denied", None)
        }
        c if c.starts_with("AccessDenied") => (Kind::Denied, "backend_denied", None),
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "SlowDown"
        | "RequestThrottled" => (Kind::Throttled, "backend_throttled", None),
        "InsufficientInstanceCapacity"
        | "InstanceLimitExceeded"
        | "VcpuLimitExceeded"
        | "InsufficientCapacity" => (Kind::Capacity, "backend_capacity", None),
        "InvalidParameterValue"
        | "InvalidParameter"
        | "InvalidParameterException"
        | "ValidationException"
        | "HierarchyTypeMismatchException"
        | "UnsupportedParameterType"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "InvalidInstanceType"
        | "Unsupported"
        | "InvalidUserData.Malformed" => {
            let lower = message.to_ascii_lowercase();
            let field = if lower.contains("instance type") || lower.contains("instancetype") {
                Some("instance_type")
            } else if lower.contains("userdata") || lower.contains("user data") {
                Some("user_data")
            } else {
                None
            };
            (Kind::InvalidInput, "invalid_input", field)
        }
        "ServiceUnavailable"
        | "Unavailable"
        | "InternalError"
        | "InternalServiceError"
        | "InternalServerError" => (Kind::Unavailable, "backend_unavailable", None),
        _ => (Kind::Refused, "backend_refused", None),
    }
}

/// Converts any SDK error of an EC2 call.
pub(crate) fn from_sdk<E, R>(err: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error,
    SdkError<E, R>: RequestId,
{
    let request_id = err.request_id().map(str::to_string);
    let mut error = match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let message = e.message().unwrap_or("no message");
            let (kind, overcast_code, field) = classify(code, message);
            let mut error = ProviderError::new(kind, overcast_code, format!("AWS: {message}"));
            error.field = field;
            error.backend_code = Some(code.to_string());
            error
        }
        SdkError::TimeoutError(_) => ProviderError::new(
            Kind::Timeout,
            "backend_timeout",
            "AWS did not answer in time",
        ),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => ProviderError::new(
            Kind::Timeout,
            "backend_timeout",
            "AWS did not answer in time",
        ),
        SdkError::DispatchFailure(failure) => {
            let why = if failure.is_io() {
                "connection failed"
            } else if failure.is_user() {
                "the request was not valid"
            } else {
                "the request could not be sent"
            };
            ProviderError::new(
                Kind::Unavailable,
                "backend_unreachable",
                format!("cannot reach the AWS endpoint: {why}"),
            )
        }
        SdkError::ResponseError(_) => ProviderError::new(
            Kind::Refused,
            "backend_bad_response",
            "AWS answered with something that is not a valid response",
        ),
        _ => ProviderError::new(
            Kind::Refused,
            "backend_refused",
            "the AWS request could not be made",
        ),
    };
    error.request_id = request_id;
    error
}

/// Whether an error is EC2's answer to a dry run that would have succeeded.
pub(crate) fn is_dry_run_ok(error: &ProviderError) -> bool {
    error.backend_code.as_deref() == Some("DryRunOperation")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_classes_codes_and_fields() {
        assert_eq!(
            classify("InvalidInstanceID.NotFound", ""),
            (Kind::NotFound, "instance_not_found", None)
        );
        assert_eq!(
            classify("InvalidAMIID.Malformed", ""),
            (Kind::InvalidInput, "image_not_found", Some("image"))
        );
        assert_eq!(
            classify("IncorrectInstanceState", ""),
            (Kind::Conflict, "wrong_state", None)
        );
        assert_eq!(
            classify("RequestLimitExceeded", ""),
            (Kind::Throttled, "backend_throttled", None)
        );
        assert_eq!(
            classify("InsufficientInstanceCapacity", ""),
            (Kind::Capacity, "backend_capacity", None)
        );
        assert_eq!(
            classify("UnauthorizedOperation", ""),
            (Kind::Denied, "backend_denied", None)
        );
        assert_eq!(
            classify(
                "InvalidParameterValue",
                "The instance type 'x' does not exist"
            ),
            (Kind::InvalidInput, "invalid_input", Some("instance_type"))
        );
        assert_eq!(
            classify("SomethingNew", ""),
            (Kind::Refused, "backend_refused", None)
        );
    }
}
