//! The provider interface: what a backend (AWS, QEMU, ...) says about itself, the
//! capabilities it offers, and the error it reports. Backends implement [`Provider`]; the
//! core holds one per environment and never sees an SDK or a hypervisor.

pub mod cloud_init;
mod compute;
mod containers;
mod error;
mod firewall;
mod images;
mod keypairs;
mod secrets;
mod settings;
mod storage;
mod tags;

pub use compute::{
    Action, Compute, InstanceChange, InstanceFilter, LaunchDefaults, LaunchSize, LaunchSpec,
    MachineSize, SizeRequest,
};
pub use containers::{
    ClusterSpec, ContainerOverride, ContainerSupport, Containers, LogEvent, LogPage, LogQuery,
    RegistrySpec, RunTaskSpec, ServiceDiscovery, ServiceSpec, ServiceUpdate, TaskDefinitionSpec,
    TaskFilter,
};
pub use error::{ProviderError, ProviderErrorKind};
pub use firewall::Firewall;
pub use images::{ImageSpec, Images, ImportSource, ImportSpec, Progress};
pub use keypairs::{KeyPair, KeyPairs};
pub use secrets::{ParameterPage, ParameterSpec, Parameters, SecretSpec, Secrets, VersionWanted};
pub use settings::{
    check_settings, factories, parse_settings, ProviderContext, ProviderFactories, ProviderFactory,
    SettingProblem, SettingsCheck, Table, Value,
};
pub use storage::{
    ByteStream, ObjectDownload, ObjectQuery, ObjectSpec, ObjectStore, PresignMethod,
};
pub use tags::{ResourceKind, Tags};

use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A family of calls a provider may offer. A provider lists the ones it has; a request for
/// one it lacks is answered "not supported by provider X", never with a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Compute,
    Images,
    Firewall,
    KeyPairs,
    ObjectStore,
    Tags,
    Containers,
    Secrets,
    Parameters,
}

/// Whether a provider can be used now, and why not if it cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProviderStatus {
    pub reachable: bool,
    /// Why it is unreachable, with what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Facts worth showing, e.g. the accelerator a local provider uses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl ProviderStatus {
    pub fn unreachable(reason: impl Into<String>) -> Self {
        ProviderStatus {
            reachable: false,
            reason: Some(reason.into()),
            details: BTreeMap::new(),
        }
    }
}

/// A backend as the core sees it.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's name in config: `aws`, `qemu`, ...
    fn kind(&self) -> &str;

    /// The regions the environment spans, for every capability alike; the first is the
    /// default for creates. None when the provider cannot run here.
    fn regions(&self) -> Vec<String>;

    /// What this provider offers: read from the capability accessors, so the two never
    /// disagree.
    fn capabilities(&self) -> Vec<Capability> {
        [
            (Capability::Compute, self.compute().is_some()),
            (Capability::Images, self.images().is_some()),
            (Capability::Firewall, self.firewall().is_some()),
            (Capability::KeyPairs, self.key_pairs().is_some()),
            (Capability::ObjectStore, self.object_store().is_some()),
            (Capability::Tags, self.tags().is_some()),
            (Capability::Secrets, self.secrets().is_some()),
            (Capability::Parameters, self.parameters().is_some()),
            (Capability::Containers, self.containers().is_some()),
        ]
        .into_iter()
        .filter_map(|(capability, offered)| offered.then_some(capability))
        .collect()
    }

    /// Probes the backend; used by `/readyz` and the environment listing.
    async fn status(&self) -> ProviderStatus;

    /// Why this provider cannot be used at all, if it cannot.
    fn unavailable_reason(&self) -> Option<&str> {
        None
    }

    /// Virtual machines, if this provider has them.
    fn compute(&self) -> Option<&dyn Compute> {
        None
    }

    /// Security groups, if this provider has them.
    fn firewall(&self) -> Option<&dyn Firewall> {
        None
    }

    /// Machine images, if this provider has them.
    fn images(&self) -> Option<&dyn Images> {
        None
    }

    /// SSH key pairs, if this provider has them.
    fn key_pairs(&self) -> Option<&dyn KeyPairs> {
        None
    }

    /// Buckets and objects, if this provider has them.
    fn object_store(&self) -> Option<&dyn ObjectStore> {
        None
    }

    /// Tags on its resources, if this provider keeps them.
    fn tags(&self) -> Option<&dyn Tags> {
        None
    }

    /// Secrets, if this provider keeps them.
    fn secrets(&self) -> Option<&dyn Secrets> {
        None
    }

    /// Parameters, if this provider keeps them.
    fn parameters(&self) -> Option<&dyn Parameters> {
        None
    }

    /// Container services, if this provider runs them.
    fn containers(&self) -> Option<&dyn Containers> {
        None
    }

    /// Log groups, their events and the execution role, for container services.
    fn container_support(&self) -> Option<&dyn ContainerSupport> {
        None
    }

    /// Service discovery for container services.
    fn service_discovery(&self) -> Option<&dyn ServiceDiscovery> {
        None
    }
}

/// Told of every backend call a provider makes, for metrics.
pub trait CallObserver: Send + Sync {
    /// One call as its caller saw it, after any retries; `outcome` is `ok` or overcast's
    /// error code.
    fn backend_call(&self, provider: &str, action: &str, region: &str, outcome: &str);

    /// One attempt on the wire: a call the provider retried after throttling or a lost
    /// answer makes several, and only attempts show how hard a backend pushes back.
    fn backend_attempt(&self, attempt: &Attempt<'_>);
}

/// One attempt of a backend call.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub provider: &'a str,
    pub action: &'a str,
    pub region: &'a str,
    /// 1 for a call's first attempt, 2 for its first retry, and so on.
    pub number: u32,
    pub outcome: AttemptOutcome,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The backend answered with success.
    Ok,
    /// The backend said to slow down; it did not act.
    Throttled,
    /// The backend answered with an error of another kind.
    Failed,
    /// No answer came (connection refused or reset, timeout): the backend may have acted.
    NoAnswer,
}

impl AttemptOutcome {
    /// How an attempt that ended in this error ended.
    pub fn of_error(error: &ProviderError) -> AttemptOutcome {
        match error.kind {
            ProviderErrorKind::Throttled => AttemptOutcome::Throttled,
            ProviderErrorKind::Timeout | ProviderErrorKind::Unavailable => AttemptOutcome::NoAnswer,
            _ => AttemptOutcome::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Ok => "ok",
            AttemptOutcome::Throttled => "throttled",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::NoAnswer => "no_answer",
        }
    }
}

/// An environment whose provider cannot run in this server (not built in, or missing a
/// program on this host). It keeps the environment listed with the reason, so the rest of
/// overcast works on.
pub struct Unavailable {
    kind: String,
    reason: String,
}

impl Unavailable {
    pub fn new(kind: impl Into<String>, reason: impl Into<String>) -> Self {
        Unavailable {
            kind: kind.into(),
            reason: reason.into(),
        }
    }
}

#[async_trait]
impl Provider for Unavailable {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn regions(&self) -> Vec<String> {
        vec![]
    }

    async fn status(&self) -> ProviderStatus {
        ProviderStatus::unreachable(self.reason.clone())
    }

    fn unavailable_reason(&self) -> Option<&str> {
        Some(&self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_provider_says_why_and_offers_nothing() {
        let p = Unavailable::new("qemu", "qemu-system-x86_64 not found");
        assert_eq!(p.kind(), "qemu");
        assert!(p.capabilities().is_empty());
        let status = poll_once(p.status());
        assert!(!status.reachable);
        assert_eq!(
            status.reason.as_deref(),
            Some("qemu-system-x86_64 not found")
        );
    }

    /// Runs a future that never waits (the status of an unavailable provider).
    fn poll_once<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the future waited"),
        }
    }
}
