//! Each attempt the SDK makes on the wire, reported to the call observer: the SDK retries
//! throttled and failed attempts inside one call, so only here does throttling show.

use aws_sdk_ec2::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use overcast_provider::{Attempt, AttemptOutcome, CallObserver};
use std::sync::Arc;

/// The error codes with which AWS services say "slow down" (EC2, S3, and the JSON APIs).
const THROTTLING_CODES: [&str; 6] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "SlowDown",
    "RequestThrottled",
    "TooManyRequestsException",
];

/// Reports every attempt of one region's SDK clients.
#[derive(Clone)]
pub(crate) struct AttemptObserver {
    pub(crate) region: String,
    pub(crate) observer: Arc<dyn CallObserver>,
}

impl std::fmt::Debug for AttemptObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptObserver")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Intercept for AttemptObserver {
    fn name(&self) -> &'static str {
        "overcast::AttemptObserver"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let action = cfg.load::<Metadata>().map(Metadata::name).unwrap_or("?");
        let number = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        let outcome = match context.response() {
            None => AttemptOutcome::NoAnswer,
            Some(response) => {
                let status = response.status().as_u16();
                // The SDK has read a non-streaming answer's body into memory by now.
                let body = response.body().bytes().unwrap_or_default();
                outcome_of(status, body)
            }
        };
        self.observer.backend_attempt(&Attempt {
            provider: "aws",
            action,
            region: &self.region,
            number,
            outcome,
        });
        Ok(())
    }
}

/// How an attempt ended, from its HTTP status and (for errors) the code in its body.
fn outcome_of(status: u16, body: &[u8]) -> AttemptOutcome {
    if (200..300).contains(&status) {
        return AttemptOutcome::Ok;
    }
    // The code sits in XML (`<Code>SlowDown</Code>`) or JSON (`"__type"`) by protocol.
    let body = String::from_utf8_lossy(body);
    if status == 429 || THROTTLING_CODES.iter().any(|code| body.contains(code)) {
        AttemptOutcome::Throttled
    } else {
        AttemptOutcome::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_told_from_other_errors_by_status_and_code() {
        let ec2_throttle = br#"<Response><Errors><Error><Code>RequestLimitExceeded</Code>
            <Message>Request limit exceeded.</Message></Error></Errors></Response>"#;
        let s3_throttle = br#"<Error><Code>SlowDown</Code><Message>Reduce</Message></Error>"#;
        let not_found = br#"<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>
            </Error></Errors></Response>"#;
        assert_eq!(outcome_of(200, b"<ok/>"), AttemptOutcome::Ok);
        assert_eq!(outcome_of(503, ec2_throttle), AttemptOutcome::Throttled);
        assert_eq!(outcome_of(503, s3_throttle), AttemptOutcome::Throttled);
        assert_eq!(outcome_of(429, b""), AttemptOutcome::Throttled);
        assert_eq!(outcome_of(400, not_found), AttemptOutcome::Failed);
        assert_eq!(
            outcome_of(503, b"<Code>Unavailable</Code>"),
            AttemptOutcome::Failed
        );
    }
}
