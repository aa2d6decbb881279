//! The simulated backend (`provider = "sim"`), after omicron's simulated sled agent: every
//! capability in memory, states that move with time, and faults that can be switched on.
//!
//! It lets core's use cases be tested without a cloud (re-runs, resumes, cancels, partial
//! failures), serves fleets of 10,000 instances to benchmarks, and lets anyone try overcast
//! without a cloud account. Nothing runs in the background: a state is read from the
//! simulated clock when it is asked for, so nothing outlives a test. Every call passes one
//! gate ([`SimProvider`]'s `call`) that applies the faults and reports the call to the
//! environment's [`CallObserver`] under EC2's, S3's, Secrets Manager's, SSM's or ECS's name
//! for it.

mod compute;
mod container_support;
mod containers;
mod errors;
mod faults;
mod firewall;
mod images;
mod keypairs;
mod parameters;
mod secrets;
mod settings;
mod storage;
mod tags;
mod world;

pub use compute::{BASE_IMAGE, DEFAULT_INSTANCE_TYPE};
pub use container_support::SIM_NAMESPACE;
pub use faults::{
    Faults, CONTAINER_SUPPORT_ACTIONS, EC2_ACTIONS, ECS_ACTIONS, S3_ACTIONS,
    SECRETS_MANAGER_ACTIONS, SSM_ACTIONS,
};
pub use settings::{Settings, SimFactory, SimMachine};

use async_trait::async_trait;
use overcast_provider::{
    Attempt, AttemptOutcome, CallObserver, Compute, ContainerSupport, Containers, Firewall, Images,
    KeyPairs, ObjectStore, Parameters, Provider, ProviderError, ProviderStatus, Secrets,
    ServiceDiscovery, Tags,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use compute::Timing;
use faults::Dice;
use world::World;

/// The `sim` provider of one environment.
pub struct SimProvider {
    /// The environment's name, put on every instance.
    environment: String,
    settings: Settings,
    timing: Timing,
    observer: Arc<dyn CallObserver>,
    cloud: Arc<Cloud>,
}

/// One simulated cloud: what it holds, and the dice of its faults. Providers built again
/// for the same environment share it, as a real cloud outlives a server's restart.
struct Cloud {
    world: Mutex<World>,
    dice: Mutex<Dice>,
    /// Numbers request ids, which errors carry as AWS's do.
    requests: AtomicU64,
}

impl SimProvider {
    /// A provider for `environment` with a cloud of its own, made as the settings say
    /// (with its fleet, if they ask for one).
    pub fn new(
        environment: &str,
        settings: Settings,
        observer: Arc<dyn CallObserver>,
    ) -> SimProvider {
        let mut world = World::new(&settings.regions);
        compute::add_fleet(&mut world, &settings.regions, settings.instances);
        let cloud = Cloud {
            world: Mutex::new(world),
            dice: Mutex::new(Dice::new(settings.faults(), settings.seed)),
            requests: AtomicU64::new(0),
        };
        SimProvider {
            environment: environment.to_string(),
            timing: settings.timing(),
            settings,
            observer,
            cloud: Arc::new(cloud),
        }
    }

    /// A provider over this one's cloud that reports to another observer: the same
    /// environment built again by a new server.
    fn sharing_cloud(&self, observer: Arc<dyn CallObserver>) -> SimProvider {
        SimProvider {
            environment: self.environment.clone(),
            settings: self.settings.clone(),
            timing: self.timing,
            observer,
            cloud: self.cloud.clone(),
        }
    }

    /// Switches the cloud's faults, for every call from now on.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.cloud.dice).set_faults(faults);
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        lock(&self.cloud.dice).faults().clone()
    }

    /// Moves the simulated clock on, so a test sees transitions finish without waiting.
    pub fn advance_clock(&self, by: Duration) {
        self.world().clock.skip(by);
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.cloud.world)
    }

    fn check_region(&self, region: &str) -> Result<(), ProviderError> {
        if self.settings.regions.iter().any(|r| r == region) {
            Ok(())
        } else {
            Err(errors::unknown_region(
                region,
                &self.environment,
                &self.settings.regions,
            ))
        }
    }

    /// The regions a call about `region` (or all, for `None`) covers.
    fn regions_of(&self, region: Option<&str>) -> Vec<String> {
        match region {
            Some(region) => vec![region.to_string()],
            None => self.settings.regions.clone(),
        }
    }

    /// The gate every backend call passes: the region is checked, then the faults in force
    /// decide the latency and whether the call is refused before it acts. A refusal is
    /// reported here; a call let through is reported when it is answered.
    async fn call<'a>(
        &'a self,
        action: &'static str,
        region: &'a str,
    ) -> Result<Call<'a>, ProviderError> {
        self.check_region(region)?;
        let roll = lock(&self.cloud.dice).roll(action, region);
        if !roll.latency.is_zero() {
            tokio::time::sleep(roll.latency).await;
        }
        if let Some(refusal) = roll.refusal {
            return self.observe(action, region, Err(refusal));
        }
        Ok(Call {
            provider: self,
            action,
            region,
            lose_answer: roll.lose_answer,
        })
    }

    /// One backend call whose work is done on the world at once.
    async fn run<T>(
        &self,
        action: &'static str,
        region: &str,
        work: impl FnOnce(&mut World) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let call = self.call(action, region).await?;
        let result = work(&mut self.world());
        call.answer(result)
    }

    /// Reports a call to the observer, as the AWS backend does, and names the call in its
    /// error with a request id.
    fn observe<T>(
        &self,
        action: &str,
        region: &str,
        result: Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let result = result.map_err(|mut error| {
            error.message = format!("sim {action}: {}", error.message);
            let number = self.cloud.requests.fetch_add(1, Ordering::Relaxed) + 1;
            error.request_id = Some(format!("sim-{number:08}"));
            error
        });
        let (outcome, attempt) = match &result {
            Ok(_) => ("ok", AttemptOutcome::Ok),
            Err(e) => (e.code, AttemptOutcome::of_error(e)),
        };
        // The simulated backend is never retried inside the provider: one attempt a call.
        self.observer.backend_attempt(&Attempt {
            provider: "sim",
            action,
            region,
            number: 1,
            outcome: attempt,
        });
        self.observer.backend_call("sim", action, region, outcome);
        result
    }
}

/// A backend call let through the gate, to be answered once its work is done.
struct Call<'a> {
    provider: &'a SimProvider,
    action: &'static str,
    region: &'a str,
    /// The dice said: the work is done, then the answer is lost.
    lose_answer: bool,
}

impl Call<'_> {
    fn answer<T>(self, result: Result<T, ProviderError>) -> Result<T, ProviderError> {
        let result = match result {
            Ok(_) if self.lose_answer => Err(faults::answer_lost()),
            other => other,
        };
        self.provider.observe(self.action, self.region, result)
    }
}

/// A lock that a panicked holder did not spoil: every change to the world is made whole
/// before its lock is let go, so what a panic leaves is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Provider for SimProvider {
    fn kind(&self) -> &str {
        "sim"
    }

    fn regions(&self) -> Vec<String> {
        self.settings.regions.clone()
    }

    /// Reachable unless the faults refuse the probe, as a real backend's probe may fail.
    async fn status(&self) -> ProviderStatus {
        let Some(region) = self.settings.regions.first() else {
            return ProviderStatus::unreachable("the environment has no region");
        };
        let probe = self
            .run("DescribeAvailabilityZones", region, |world| {
                let now = world.clock.now();
                Ok(world
                    .regions
                    .values()
                    .flat_map(|r| r.instances.values())
                    .filter(|i| !i.state(now).is_gone())
                    .count())
            })
            .await;
        match probe {
            Ok(instances) => {
                let mut status = ProviderStatus {
                    reachable: true,
                    reason: None,
                    details: Default::default(),
                };
                let details = &mut status.details;
                details.insert("instances".into(), instances.to_string());
                details.insert(
                    "pending_secs".into(),
                    self.settings.pending_secs.to_string(),
                );
                let faults = self.faults();
                if !faults.is_none() {
                    details.insert("faults".into(), describe(&faults));
                }
                status
            }
            Err(e) => ProviderStatus::unreachable(format!(
                "the simulated cloud in {region} does not answer: {e}"
            )),
        }
    }

    fn compute(&self) -> Option<&dyn Compute> {
        Some(self)
    }

    fn firewall(&self) -> Option<&dyn Firewall> {
        Some(self)
    }

    fn images(&self) -> Option<&dyn Images> {
        Some(self)
    }

    fn key_pairs(&self) -> Option<&dyn KeyPairs> {
        Some(self)
    }

    fn object_store(&self) -> Option<&dyn ObjectStore> {
        Some(self)
    }

    fn tags(&self) -> Option<&dyn Tags> {
        Some(self)
    }

    fn secrets(&self) -> Option<&dyn Secrets> {
        Some(self)
    }

    fn parameters(&self) -> Option<&dyn Parameters> {
        Some(self)
    }

    fn containers(&self) -> Option<&dyn Containers> {
        Some(self)
    }

    fn container_support(&self) -> Option<&dyn ContainerSupport> {
        Some(self)
    }

    fn service_discovery(&self) -> Option<&dyn ServiceDiscovery> {
        Some(self)
    }
}

/// The faults in force, in a line for the environment's status.
fn describe(faults: &Faults) -> String {
    let mut parts = Vec::new();
    for (name, rate) in [
        ("throttle_rate", faults.throttle_rate),
        ("error_rate", faults.error_rate),
        ("deny_rate", faults.deny_rate),
        ("act_then_fail_rate", faults.act_then_fail_rate),
    ] {
        if rate > 0.0 {
            parts.push(format!("{name} {rate}"));
        }
    }
    if !faults.latency.is_zero() {
        parts.push(format!("latency {} ms", faults.latency.as_millis()));
    }
    if !faults.actions.is_empty() {
        parts.push(format!("on {}", faults.actions.join(", ")));
    }
    if !faults.regions.is_empty() {
        parts.push(format!("in {}", faults.regions.join(", ")));
    }
    parts.join("; ")
}

/// Helpers the tests of every module share.
#[cfg(test)]
mod testing {
    use super::*;
    use std::collections::BTreeMap;

    /// Counts reported calls by action and outcome.
    #[derive(Default)]
    pub struct Calls(pub Mutex<BTreeMap<(String, String), usize>>);

    impl CallObserver for Calls {
        fn backend_call(&self, provider: &str, action: &str, _region: &str, outcome: &str) {
            assert_eq!(provider, "sim");
            *lock(&self.0)
                .entry((action.to_string(), outcome.to_string()))
                .or_default() += 1;
        }

        fn backend_attempt(&self, attempt: &Attempt<'_>) {
            assert_eq!((attempt.provider, attempt.number), ("sim", 1));
        }
    }

    impl Calls {
        pub fn count(&self, action: &str, outcome: &str) -> usize {
            lock(&self.0)
                .get(&(action.to_string(), outcome.to_string()))
                .copied()
                .unwrap_or(0)
        }
    }

    /// Settings with transitions that take `secs`, and no fleet.
    pub fn settings(secs: f64) -> Settings {
        Settings {
            pending_secs: secs,
            stopping_secs: secs,
            image_secs: secs,
            ..Settings::default()
        }
    }

    pub fn provider(settings: Settings) -> (SimProvider, Arc<Calls>) {
        let calls = Arc::new(Calls::default());
        (SimProvider::new("sim", settings, calls.clone()), calls)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use overcast_provider::ProviderErrorKind;

    #[tokio::test]
    async fn every_capability_is_offered_and_the_status_counts_instances() {
        let (sim, calls) = provider(Settings {
            instances: 5,
            ..Settings::default()
        });
        assert_eq!(sim.kind(), "sim");
        assert_eq!(sim.regions(), ["sim-1", "sim-2"]);
        assert_eq!(sim.capabilities().len(), 9);
        assert!(sim.secrets().is_some() && sim.parameters().is_some());
        assert!(sim.containers().is_some());
        let status = sim.status().await;
        assert!(status.reachable);
        assert_eq!(status.details["instances"], "5");
        assert_eq!(calls.count("DescribeAvailabilityZones", "ok"), 1);
        sim.set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        });
        let status = sim.status().await;
        assert!(!status.reachable);
        assert!(status
            .reason
            .unwrap()
            .contains("sim DescribeAvailabilityZones"));
    }

    #[tokio::test]
    async fn refusals_name_the_call_carry_a_request_id_and_are_counted() {
        let (sim, calls) = provider(Settings::default());
        sim.set_faults(Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        });
        let error = sim.zones("sim-1").await.unwrap_err();
        assert_eq!(error.kind, ProviderErrorKind::Throttled);
        assert!(error.message.starts_with("sim DescribeAvailabilityZones: "));
        assert_eq!(error.request_id.as_deref(), Some("sim-00000001"));
        assert_eq!(
            calls.count("DescribeAvailabilityZones", "backend_throttled"),
            1
        );
        let unknown = sim.zones("mars-1").await.unwrap_err();
        assert_eq!(
            (unknown.code, unknown.field),
            ("unknown_region", Some("region"))
        );
    }

    #[tokio::test]
    async fn latency_delays_every_call_it_applies_to() {
        let (sim, _) = provider(Settings::default());
        sim.set_faults(Faults {
            latency: Duration::from_millis(30),
            regions: vec!["sim-2".into()],
            ..Faults::default()
        });
        let started = std::time::Instant::now();
        sim.zones("sim-1").await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(30));
        let started = std::time::Instant::now();
        sim.zones("sim-2").await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
