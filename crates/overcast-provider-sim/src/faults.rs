//! Faults a simulated cloud can be told to have: latency, throttling, transient errors and
//! answers lost after the call took effect, each at a rate, for some or all calls. The dice
//! are seeded when asked, so a test sees the same faults on every run.

use overcast_provider::{ProviderError, ProviderErrorKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// The EC2 calls the simulator answers, by EC2's names: what call metrics count and what
/// faults may be aimed at.
pub const EC2_ACTIONS: &[&str] = &[
    "RunInstances",
    "DescribeInstances",
    "StartInstances",
    "StopInstances",
    "RebootInstances",
    "TerminateInstances",
    "DescribeAvailabilityZones",
    "ModifyInstanceAttribute",
    "GetConsoleOutput",
    "CreateImage",
    "DescribeImages",
    "DeregisterImage",
    "DeleteSnapshot",
    "DescribeSecurityGroups",
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "DescribeKeyPairs",
    "CreateKeyPair",
    "ImportKeyPair",
    "DeleteKeyPair",
    "CreateTags",
    "DeleteTags",
];

/// The S3 calls the simulator answers, by S3's names.
pub const S3_ACTIONS: &[&str] = &[
    "ListBuckets",
    "HeadBucket",
    "CreateBucket",
    "DeleteBucket",
    "ListObjectsV2",
    "HeadObject",
    "GetObject",
    "PutObject",
    "CopyObject",
    "DeleteObject",
    "DeleteObjects",
    "GetBucketTagging",
    "PutBucketTagging",
    "DeleteBucketTagging",
];

/// The Secrets Manager calls the simulator answers, by Secrets Manager's names.
pub const SECRETS_MANAGER_ACTIONS: &[&str] = &[
    "CreateSecret",
    "DescribeSecret",
    "ListSecrets",
    "PutSecretValue",
    "GetSecretValue",
    "DeleteSecret",
    "RestoreSecret",
    "TagResource",
    "UntagResource",
];

/// The SSM Parameter Store calls the simulator answers, by SSM's names.
pub const SSM_ACTIONS: &[&str] = &[
    "PutParameter",
    "DescribeParameters",
    "GetParameter",
    "GetParameterHistory",
    "DeleteParameters",
    "AddTagsToResource",
    "RemoveTagsFromResource",
    "ListTagsForResource",
];

/// The ECS calls the simulator answers, by ECS's names.
pub const ECS_ACTIONS: &[&str] = &[
    "ListClusters",
    "DescribeClusters",
    "CreateCluster",
    "DeleteCluster",
    "RegisterTaskDefinition",
    "ListTaskDefinitions",
    "DescribeTaskDefinition",
    "DeregisterTaskDefinition",
    "CreateService",
    "ListServices",
    "DescribeServices",
    "UpdateService",
    "DeleteService",
    "RunTask",
    "ListTasks",
    "DescribeTasks",
    "StopTask",
];

/// The CloudWatch Logs, IAM and Cloud Map calls the simulator answers for container
/// services (Cloud Map's by `servicediscovery:` names, as they share ECS's).
pub const CONTAINER_SUPPORT_ACTIONS: &[&str] = &[
    "CreateLogGroup",
    "ListTagsLogGroup",
    "DeleteLogGroup",
    "GetLogEvents",
    "GetRole",
    "CreateRole",
    "PutRolePolicy",
    "servicediscovery:GetNamespace",
    "servicediscovery:ListServices",
    "servicediscovery:GetService",
    "servicediscovery:CreateService",
    "servicediscovery:DeleteService",
];

/// The service a call belongs to: its refusals carry that service's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Ec2,
    S3,
    SecretsManager,
    Ssm,
    Ecs,
}

fn service(action: &str) -> Service {
    if S3_ACTIONS.contains(&action) {
        Service::S3
    } else if SECRETS_MANAGER_ACTIONS.contains(&action) {
        Service::SecretsManager
    } else if SSM_ACTIONS.contains(&action) {
        Service::Ssm
    } else if ECS_ACTIONS.contains(&action) || CONTAINER_SUPPORT_ACTIONS.contains(&action) {
        // JSON-protocol services alike: their refusals carry ECS's codes.
        Service::Ecs
    } else {
        Service::Ec2
    }
}

/// Whether `action` is a call the simulator answers.
pub(crate) fn is_action(action: &str) -> bool {
    [
        EC2_ACTIONS,
        S3_ACTIONS,
        SECRETS_MANAGER_ACTIONS,
        SSM_ACTIONS,
        ECS_ACTIONS,
        CONTAINER_SUPPORT_ACTIONS,
    ]
    .iter()
    .any(|actions| actions.contains(&action))
}

/// The faults of a simulated cloud (default: none). Rates are shares of the calls they apply to, from 0
/// (never) to 1 (always); values outside act as the nearer end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Calls answered "throttled" (EC2's `RequestLimitExceeded`, S3's `SlowDown`, Secrets
    /// Manager's, SSM's and ECS's `ThrottlingException`).
    pub throttle_rate: f64,
    /// Calls answered with a transient error, as a 503 (`ServiceUnavailable`).
    pub error_rate: f64,
    /// Calls refused for good, as when the credentials may not make them
    /// (`UnauthorizedOperation`): an error no retry outlasts.
    pub deny_rate: f64,
    /// Calls that take effect and then answer an error, as when the answer is lost on the
    /// way back.
    pub act_then_fail_rate: f64,
    /// How long each call waits before it is answered.
    pub latency: Duration,
    /// Only calls of these actions (see [`EC2_ACTIONS`], [`S3_ACTIONS`],
    /// [`SECRETS_MANAGER_ACTIONS`], [`SSM_ACTIONS`], [`ECS_ACTIONS`]); empty: all.
    pub actions: Vec<String>,
    /// Only calls to these regions; empty: all.
    pub regions: Vec<String>,
}

impl Faults {
    /// Whether these faults can touch a call at all.
    pub fn is_none(&self) -> bool {
        self.throttle_rate <= 0.0
            && self.error_rate <= 0.0
            && self.deny_rate <= 0.0
            && self.act_then_fail_rate <= 0.0
            && self.latency.is_zero()
    }

    fn applies_to(&self, action: &str, region: &str) -> bool {
        (self.actions.is_empty() || self.actions.iter().any(|a| a == action))
            && (self.regions.is_empty() || self.regions.iter().any(|r| r == region))
    }
}

/// What the dice decided for one call.
pub(crate) struct Roll {
    pub latency: Duration,
    /// The call is refused before it acts.
    pub refusal: Option<ProviderError>,
    /// The call acts, then its answer is lost.
    pub lose_answer: bool,
}

/// The faults in force and the dice that pick which calls they hit.
pub(crate) struct Dice {
    faults: Faults,
    rng: StdRng,
}

impl Dice {
    /// Seeded dice repeat their faults call for call; unseeded ones differ on every run.
    pub fn new(faults: Faults, seed: Option<u64>) -> Dice {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Dice { faults, rng }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// Decides one call's faults. Calls the faults do not apply to roll no dice, so the
    /// calls they do apply to see the same sequence whatever else runs.
    pub fn roll(&mut self, action: &str, region: &str) -> Roll {
        if self.faults.is_none() || !self.faults.applies_to(action, region) {
            return Roll {
                latency: Duration::ZERO,
                refusal: None,
                lose_answer: false,
            };
        }
        let refused: f64 = self.rng.random();
        let lost: f64 = self.rng.random();
        let throttle = self.faults.throttle_rate.clamp(0.0, 1.0);
        let error = throttle + self.faults.error_rate.clamp(0.0, 1.0);
        let refusal = if refused < throttle {
            Some(throttled(action))
        } else if refused < error {
            Some(unavailable(action))
        } else if refused < error + self.faults.deny_rate.clamp(0.0, 1.0) {
            Some(denied(action))
        } else {
            None
        };
        Roll {
            latency: self.faults.latency,
            refusal,
            lose_answer: lost < self.faults.act_then_fail_rate.clamp(0.0, 1.0),
        }
    }
}

/// A throttling answer, as the AWS backend reports one after its retries.
fn throttled(action: &str) -> ProviderError {
    let (backend, message) = match service(action) {
        Service::Ec2 => ("RequestLimitExceeded", "Request limit exceeded."),
        Service::S3 => ("SlowDown", "Please reduce your request rate."),
        Service::SecretsManager | Service::Ssm | Service::Ecs => {
            ("ThrottlingException", "Rate exceeded")
        }
    };
    let mut error = ProviderError::new(ProviderErrorKind::Throttled, "backend_throttled", message);
    error.backend_code = Some(backend.into());
    error
}

/// A transient server error: the call did nothing and may be repeated.
fn unavailable(action: &str) -> ProviderError {
    let backend = match service(action) {
        Service::Ec2 => "Unavailable",
        Service::S3 => "ServiceUnavailable",
        Service::SecretsManager => "InternalServiceError",
        Service::Ssm => "InternalServerError",
        Service::Ecs => "ServerException",
    };
    let mut error = ProviderError::new(
        ProviderErrorKind::Unavailable,
        "backend_unavailable",
        "the service is unavailable; try again",
    );
    error.backend_code = Some(backend.into());
    error
}

/// A refusal for good: the credentials may not make this call.
fn denied(action: &str) -> ProviderError {
    let backend = match service(action) {
        Service::Ec2 | Service::S3 => "UnauthorizedOperation",
        Service::SecretsManager | Service::Ssm | Service::Ecs => "AccessDeniedException",
    };
    let mut error = ProviderError::new(
        ProviderErrorKind::Denied,
        "backend_denied",
        "You are not authorized to perform this operation.",
    );
    error.backend_code = Some(backend.into());
    error
}

/// The error of a call whose answer was lost after it took effect: to the caller it looks
/// like a call that never answered.
pub(crate) fn answer_lost() -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Timeout,
        "backend_timeout",
        "no answer arrived in time (the call took effect)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolls(faults: Faults, seed: u64, n: usize) -> Vec<(Option<&'static str>, bool)> {
        let mut dice = Dice::new(faults, Some(seed));
        (0..n)
            .map(|_| {
                let roll = dice.roll("StopInstances", "sim-1");
                (roll.refusal.map(|e| e.code), roll.lose_answer)
            })
            .collect()
    }

    #[test]
    fn seeded_dice_hit_at_the_configured_rates_and_repeat() {
        let faults = Faults {
            throttle_rate: 0.1,
            error_rate: 0.2,
            act_then_fail_rate: 0.05,
            ..Faults::default()
        };
        let first = rolls(faults.clone(), 7, 10_000);
        assert_eq!(first, rolls(faults.clone(), 7, 10_000));
        assert_ne!(first, rolls(faults, 8, 10_000));
        let count = |code: &str| first.iter().filter(|(c, _)| *c == Some(code)).count();
        let lost = first.iter().filter(|(_, lost)| *lost).count();
        // Within five standard deviations of the expected counts.
        assert!(
            (850..=1150).contains(&count("backend_throttled")),
            "{first:?}"
        );
        assert!((1800..=2200).contains(&count("backend_unavailable")));
        assert!((390..=610).contains(&lost), "{lost}");
    }

    #[test]
    fn faults_hit_only_the_actions_and_regions_they_are_aimed_at() {
        let mut dice = Dice::new(
            Faults {
                error_rate: 1.0,
                actions: vec!["StopInstances".into()],
                regions: vec!["sim-2".into()],
                ..Faults::default()
            },
            Some(1),
        );
        assert!(dice.roll("StopInstances", "sim-2").refusal.is_some());
        assert!(dice.roll("StopInstances", "sim-1").refusal.is_none());
        assert!(dice.roll("DescribeInstances", "sim-2").refusal.is_none());
        let error = dice.roll("StopInstances", "sim-2").refusal.unwrap();
        assert_eq!(
            (error.kind, error.backend_code.as_deref()),
            (ProviderErrorKind::Unavailable, Some("Unavailable"))
        );
        dice.set_faults(Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        });
        let error = dice.roll("PutObject", "sim-1").refusal.unwrap();
        assert_eq!(error.backend_code.as_deref(), Some("SlowDown"));
        let error = dice.roll("PutParameter", "sim-1").refusal.unwrap();
        assert_eq!(error.backend_code.as_deref(), Some("ThrottlingException"));
    }

    #[test]
    fn ecs_calls_are_actions_refused_with_ecs_codes() {
        for action in ECS_ACTIONS {
            assert!(is_action(action), "{action}");
            assert_eq!(service(action), Service::Ecs, "{action}");
        }
        let code = |faults: Faults, action| {
            Dice::new(faults, Some(1))
                .roll(action, "sim-1")
                .refusal
                .unwrap()
                .backend_code
        };
        let all = |throttle_rate, error_rate, deny_rate| Faults {
            throttle_rate,
            error_rate,
            deny_rate,
            ..Faults::default()
        };
        assert_eq!(
            code(all(1.0, 0.0, 0.0), "RunTask").as_deref(),
            Some("ThrottlingException")
        );
        assert_eq!(
            code(all(0.0, 1.0, 0.0), "DescribeServices").as_deref(),
            Some("ServerException")
        );
        assert_eq!(
            code(all(0.0, 0.0, 1.0), "DeleteCluster").as_deref(),
            Some("AccessDeniedException")
        );
    }

    #[test]
    fn secrets_manager_and_ssm_calls_are_actions_with_their_own_refusals() {
        for action in SECRETS_MANAGER_ACTIONS.iter().chain(SSM_ACTIONS) {
            assert!(is_action(action), "{action}");
            assert!(!EC2_ACTIONS.contains(action) && !S3_ACTIONS.contains(action));
        }
        assert!(!is_action("GetSecret"));
        let mut dice = Dice::new(
            Faults {
                error_rate: 1.0,
                ..Faults::default()
            },
            Some(1),
        );
        let code =
            |dice: &mut Dice, action| dice.roll(action, "sim-1").refusal.unwrap().backend_code;
        assert_eq!(
            code(&mut dice, "GetSecretValue").as_deref(),
            Some("InternalServiceError")
        );
        assert_eq!(
            code(&mut dice, "GetParameter").as_deref(),
            Some("InternalServerError")
        );
        dice.set_faults(Faults {
            deny_rate: 1.0,
            ..Faults::default()
        });
        assert_eq!(
            code(&mut dice, "DeleteParameters").as_deref(),
            Some("AccessDeniedException")
        );
        assert_eq!(
            code(&mut dice, "StopInstances").as_deref(),
            Some("UnauthorizedOperation")
        );
    }
}
