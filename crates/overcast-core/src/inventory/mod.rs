//! The inventory: each environment's instances, images, security groups, buckets and
//! container services kept in the server, so lists, gets and the selectors of bulk plans
//! answer from memory instead of a full backend listing per request. Each kind is filled
//! by its first use or a refresh (one listing per region, concurrently), refreshed in the
//! background at `inventory_refresh_secs`, and written at once by overcast's own changes.
//! Every read of the backend (a refresh, a `fresh` read, a bulk action's re-check of its
//! targets) is compared with what the inventory held: what changed without overcast
//! (created, changed in state, stage, tags or settings, or deleted) is drift, queued as
//! events.
//!
//! Each server keeps its own inventory (see ARCHITECTURE.md): nothing to coordinate, and a
//! change made through another server shows here at its next refresh.

mod kinds;
mod shelf;

pub use kinds::{Held, KINDS, WHOLE_ACCOUNT};
pub use shelf::{Drift, Scope, Shelf};

use overcast_store::{EventFilter, PageRequest};
use overcast_types::{
    Bucket, ContainerService, Error, Event, Image, Instance, Page, SecurityGroup,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

use crate::access::visible_org;
use crate::app::Core;
use crate::auth::Principal;
use crate::environments::Environment;
use crate::errors::store_error;

/// One environment's resources as last read or written.
pub struct Inventory {
    environment: String,
    pub instances: Shelf<Instance>,
    pub images: Shelf<Image>,
    pub security_groups: Shelf<SecurityGroup>,
    pub buckets: Shelf<Bucket>,
    pub container_services: Shelf<ContainerService>,
    /// Instances an operation is changing now: a read of them updates the inventory but is
    /// no drift (the operation is the one changing them).
    changing: Mutex<HashMap<String, usize>>,
    /// One refresh at a time; a caller that finds one under way waits for it.
    refreshing: tokio::sync::Mutex<()>,
    /// Drift seen and not yet recorded, and the signal that there is some.
    drift: Mutex<Vec<(Event, String)>>,
    /// Shared with the background task, which must not keep the environment alive.
    drift_ready: Arc<tokio::sync::Notify>,
}

/// What one refresh did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Refreshed {
    pub environment: String,
    /// Each listing it made: a kind in a region, with its count or why it failed.
    pub listings: Vec<Listing>,
    /// Instances the inventory holds now.
    pub instances: usize,
    /// Changes made outside overcast that this refresh saw.
    pub drift: usize,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub as_of: OffsetDateTime,
}

/// One listing of a refresh.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Listing {
    /// `instance`, `image`, `security_group`, `bucket` or `container_service`.
    pub kind: String,
    /// The region read; `*` for a listing of the whole account (buckets).
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Marks instances as being changed by overcast while it lives.
pub struct Changing<'a> {
    inventory: &'a Inventory,
    ids: Vec<String>,
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        let mut changing = lock(&self.inventory.changing);
        for id in &self.ids {
            if let Some(n) = changing.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    changing.remove(id);
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inventory {
    pub fn new(environment: &str) -> Inventory {
        Inventory {
            environment: environment.to_string(),
            instances: Shelf::default(),
            images: Shelf::default(),
            security_groups: Shelf::default(),
            buckets: Shelf::default(),
            container_services: Shelf::default(),
            changing: Mutex::default(),
            refreshing: tokio::sync::Mutex::new(()),
            drift: Mutex::default(),
            drift_ready: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// The shelf of one kind.
    pub fn shelf<T: Held>(&self) -> &Shelf<T> {
        T::shelf(self)
    }

    /// Marks instances as being changed by overcast until the guard is dropped.
    pub fn changing(&self, ids: &[String]) -> Changing<'_> {
        let mut changing = lock(&self.changing);
        for id in ids {
            *changing.entry(id.clone()).or_default() += 1;
        }
        Changing {
            inventory: self,
            ids: ids.to_vec(),
        }
    }

    /// Takes in what a backend read of kind `T` found (see [`Shelf::absorb`]) and queues
    /// the drift it shows as events. Answers how much drift it saw.
    pub fn absorb<T: Held>(
        &self,
        scope: Scope<'_>,
        listed: Vec<T>,
        began: Instant,
        at: OffsetDateTime,
    ) -> usize {
        let changing = lock(&self.changing).clone();
        let drift = self
            .shelf::<T>()
            .absorb(scope, listed, began, at, &changing);
        let count = drift.len();
        if count > 0 {
            let events = drift.into_iter().map(|d| self.event(T::KIND, d, at));
            lock(&self.drift).extend(events);
            self.drift_ready.notify_one();
        }
        count
    }

    /// An event and its digest: the change itself, the same for every server that sees it.
    fn event(&self, resource_kind: &str, drift: Drift, at: OffsetDateTime) -> (Event, String) {
        let digest = Sha256::digest(format!(
            "{}|{resource_kind}|{}|{}|{}",
            self.environment,
            drift.key,
            drift.kind.as_str(),
            drift.detail
        ));
        let event = Event {
            id: crate::ids::new_id("ev"),
            at,
            environment: self.environment.clone(),
            kind: drift.kind,
            resource_kind: resource_kind.to_string(),
            resource: drift.key,
            org: drift.org,
            detail: drift.detail,
        };
        (event, hex::encode(&digest[..16]))
    }

    /// The drift queued so far, and its digests, to record.
    pub fn take_drift(&self) -> Vec<(Event, String)> {
        std::mem::take(&mut *lock(&self.drift))
    }
}

impl Environment {
    /// Reads every kind the backend has, every region of each (concurrently, one listing
    /// each), into the inventory; a listing that fails keeps what was known of its part.
    /// Only instances that cannot be read at all make it an error.
    pub async fn refresh(&self) -> Result<Refreshed, Error> {
        let _one = self.inventory.refreshing.lock().await;
        let at = OffsetDateTime::now_utc();
        let regions = Instance::parts(self)?;
        let (instances, images, groups, buckets, services) = tokio::join!(
            self.read_kind::<Instance>(&regions),
            self.read_kind_if_any::<Image>(),
            self.read_kind_if_any::<SecurityGroup>(),
            self.read_kind_if_any::<Bucket>(),
            self.read_kind_if_any::<ContainerService>(),
        );
        let instances = instances.unless_all_failed()?;
        let mut listings = Vec::new();
        let mut drift = 0;
        for read in [instances, images, groups, buckets, services] {
            listings.extend(read.listings);
            drift += read.drift;
        }
        Ok(Refreshed {
            environment: self.name.clone(),
            listings,
            instances: self.inventory.instances.len(),
            drift,
            as_of: at,
        })
    }

    /// Reads every region of one kind into the inventory now (what `fresh` asks for).
    pub async fn reread<T: Held>(&self) -> Result<(), Error> {
        let parts = T::parts(self)?;
        let _one = self.inventory.refreshing.lock().await;
        self.read_kind::<T>(&parts)
            .await
            .unless_all_failed()
            .map(drop)
    }

    /// Fills the inventory's shelf of a kind unless every one of `parts` has been read; a
    /// caller that finds a refresh under way waits for it rather than starting another.
    pub async fn know<T: Held>(&self, parts: &[String]) -> Result<(), Error> {
        let shelf = self.inventory.shelf::<T>();
        if shelf.knows(parts) {
            return Ok(());
        }
        let _one = self.inventory.refreshing.lock().await;
        if shelf.knows(parts) {
            return Ok(());
        }
        let read = self.read_kind::<T>(&T::parts(self)?).await;
        let read = read.unless_all_failed()?;
        // A part never read cannot be answered from memory.
        match read.listings.iter().find(|l| l.error.is_some()) {
            Some(failed) if !shelf.knows(parts) => Err(Error::unavailable(
                "backend_unavailable",
                format!(
                    "the {}s of region {} of environment {} cannot be read: {}",
                    T::KIND,
                    failed.region,
                    self.name,
                    failed.error.as_deref().unwrap_or_default()
                ),
                5,
            )),
            _ => Ok(()),
        }
    }

    /// The resources of a kind that `keep` keeps, in one region or all, from the inventory
    /// (filled first, or read afresh when `fresh` asks), sorted by key, and when the
    /// backend was read for them. Buckets are listed whole and take no region.
    pub async fn listed<T: Held>(
        &self,
        region: Option<&str>,
        fresh: bool,
        keep: impl Fn(&T) -> bool,
    ) -> Result<(Vec<T>, OffsetDateTime), Error> {
        let parts = self.known_parts::<T>(region, fresh).await?;
        self.inventory
            .shelf::<T>()
            .select(&parts, keep)
            .ok_or_else(|| self.not_read(T::KIND))
    }

    /// The parts a listing of a kind covers (one region, or all), each read into the
    /// inventory (afresh when `fresh` asks).
    pub async fn known_parts<T: Held>(
        &self,
        region: Option<&str>,
        fresh: bool,
    ) -> Result<Vec<String>, Error> {
        let parts = match region {
            Some(region) => vec![self.check_region(Some(region))?],
            None => T::parts(self)?,
        };
        if fresh {
            self.reread::<T>().await?;
        } else {
            self.know::<T>(&parts).await?;
        }
        Ok(parts)
    }

    pub(crate) fn not_read(&self, kind: &str) -> Error {
        Error::unavailable(
            "backend_unavailable",
            format!(
                "the {kind}s of environment {} have not been read yet",
                self.name
            ),
            5,
        )
    }

    /// One listing per part of a kind, concurrently, taken into the inventory.
    async fn read_kind<T: Held>(&self, parts: &[String]) -> KindRead {
        let began = Instant::now();
        let at = OffsetDateTime::now_utc();
        let reads =
            futures::future::join_all(parts.iter().map(|part| T::list_part(self, part))).await;
        let mut read = KindRead::default();
        for (part, listed) in parts.iter().zip(reads) {
            let (count, error) = match listed {
                Ok(listed) => {
                    let count = listed.len();
                    read.drift += self.inventory.absorb(Scope::Part(part), listed, began, at);
                    (Some(count), None)
                }
                Err(e) => {
                    let message = e.message.clone();
                    read.failure.get_or_insert(e);
                    (None, Some(message))
                }
            };
            read.listings.push(Listing {
                kind: T::KIND.into(),
                region: part.clone(),
                count,
                error,
            });
        }
        read
    }

    /// [`Environment::read_kind`] over every part, for a kind the backend may lack.
    async fn read_kind_if_any<T: Held>(&self) -> KindRead {
        match T::parts(self) {
            Ok(parts) => self.read_kind::<T>(&parts).await,
            Err(_) => KindRead::default(),
        }
    }

    /// Reads some instances at the backend, taking what it says into the inventory.
    pub async fn read_instances(
        &self,
        region: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<Instance>, Error> {
        let compute = self.compute()?;
        let began = Instant::now();
        let at = OffsetDateTime::now_utc();
        let filter = overcast_provider::InstanceFilter {
            region: region.map(str::to_string),
            ids: ids.to_vec(),
            ..Default::default()
        };
        let found: Vec<Instance> = compute
            .list_instances(&filter)
            .await
            .map_err(crate::errors::provider_error)?
            .into_iter()
            .map(|i| self.decorate(i))
            .collect();
        self.inventory
            .absorb(Scope::Keys(ids), found.clone(), began, at);
        Ok(found)
    }
}

/// What the listings of one kind found: each listing, the drift seen, the first failure.
#[derive(Default)]
struct KindRead {
    listings: Vec<Listing>,
    drift: usize,
    failure: Option<Error>,
}

impl KindRead {
    /// The read, unless every listing failed: then the first failure, as the backend said
    /// it (throttled, denied, unreachable).
    fn unless_all_failed(self) -> Result<KindRead, Error> {
        match self.failure {
            Some(failure) if self.listings.iter().all(|l| l.error.is_some()) => Err(failure),
            _ => Ok(self),
        }
    }
}

impl Core {
    /// Refreshes an environment's inventory now and records the drift it saw.
    pub async fn refresh_inventory(&self, env: &str) -> Result<Refreshed, Error> {
        let environment = self.environments.require(env)?;
        let refreshed = environment.refresh().await;
        self.metrics.inventory_refresh(
            env,
            if refreshed.is_ok() { "ok" } else { "failed" },
            environment.inventory.instances.len(),
        );
        self.record_drift(environment).await;
        refreshed
    }

    /// The resources of a kind the caller may see in an environment (in one region or all;
    /// only `keep`'s), from its inventory (read afresh when `fresh`), saying when the
    /// backend was read for them.
    pub(crate) async fn listed_visible<T: Held>(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        fresh: bool,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Page<T>, Error> {
        let environment = self.environments.require(env)?;
        let visible = |r: &T| keep(r) && visible_org(principal, r.org());
        let (items, as_of) = environment.listed(region, fresh, visible).await?;
        self.record_drift(environment).await;
        Ok(Page {
            as_of: Some(as_of),
            ..Page::whole(items)
        })
    }

    /// Writes the drift an environment's inventory has queued as events. A write that
    /// fails is logged: the drift was seen, and the next refresh will not see it again.
    pub(crate) async fn record_drift(&self, environment: &Environment) {
        for (event, digest) in environment.inventory.take_drift() {
            match self.store.record_event(&event, &digest).await {
                Ok(true) => self.metrics.drift(&event.environment, event.kind.as_str()),
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    environment = %event.environment,
                    resource = %event.resource,
                    error = %e,
                    "a drift event could not be recorded"
                ),
            }
        }
    }

    /// Events the caller's org may see, newest first.
    pub async fn events(
        &self,
        principal: &Principal,
        mut filter: EventFilter,
        page: PageRequest,
    ) -> Result<Page<Event>, Error> {
        filter.org = principal.org_filter();
        let (items, next_page_token) = self
            .store
            .events(&filter, &page)
            .await
            .map_err(store_error)?;
        Ok(Page::of(items, next_page_token))
    }

    /// Keeps every environment this server drives refreshed in the background: each at
    /// `inventory_refresh_secs` (none at 0), twice as long after each failed refresh up to
    /// eight times, and its drift recorded as soon as any read sees some. The tasks end
    /// with the core.
    pub(crate) fn keep_inventories(self: &Arc<Self>) {
        let period = Duration::from_secs(self.config.inventory_refresh_secs);
        for environment in self.environments.iter() {
            if environment.served_by.is_some() || environment.compute().is_err() {
                continue;
            }
            let core = Arc::downgrade(self);
            let name = environment.name.clone();
            let drift_ready = environment.inventory.drift_ready.clone();
            tokio::spawn(async move {
                let mut delay = period;
                loop {
                    let wait = async {
                        if period.is_zero() {
                            std::future::pending::<()>().await
                        } else {
                            tokio::time::sleep(delay).await
                        }
                    };
                    let notified = tokio::select! {
                        () = drift_ready.notified() => true,
                        () = wait => false,
                    };
                    let Some(core) = core.upgrade() else { return };
                    if notified {
                        if let Ok(environment) = core.environments.require(&name) {
                            core.record_drift(environment).await;
                        }
                        continue;
                    }
                    delay = match core.refresh_inventory(&name).await {
                        Ok(_) => period,
                        Err(e) => {
                            tracing::warn!(environment = %name, error = %e.message, "the inventory could not be refreshed");
                            (delay * 2).min(period * 8)
                        }
                    };
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use overcast_types::{EventKind, InstanceState, Rule};
    use std::collections::BTreeMap;

    fn instance(id: &str, state: InstanceState, stage: &str) -> Instance {
        Instance {
            stage: Some(stage.into()),
            tags: BTreeMap::from([("stage".to_string(), stage.to_string())]),
            org: Some("acme".into()),
            ..Instance::new(id, "e", "r1", state)
        }
    }

    fn kinds(inventory: &Inventory) -> Vec<(EventKind, String)> {
        inventory
            .take_drift()
            .into_iter()
            .map(|(e, _)| (e.kind, e.resource))
            .collect()
    }

    #[test]
    fn a_first_read_is_no_drift_and_later_ones_see_what_changed_outside() {
        let inventory = Inventory::new("e");
        let at = OffsetDateTime::now_utc();
        let first = vec![
            instance("i-1", InstanceState::Running, "dev"),
            instance("i-2", InstanceState::Running, "dev"),
            instance("i-3", InstanceState::Running, "dev"),
        ];
        assert_eq!(
            inventory.absorb(Scope::Part("r1"), first, Instant::now(), at),
            0
        );
        assert!(inventory.instances.knows(&["r1".to_string()]));
        assert!(!inventory.instances.knows(&["r2".to_string()]));

        // i-1 stopped and promoted outside, i-2 deleted, i-4 made outside.
        let second = vec![
            instance("i-1", InstanceState::Stopped, "test"),
            instance("i-3", InstanceState::Running, "dev"),
            instance("i-4", InstanceState::Running, "dev"),
        ];
        assert_eq!(
            inventory.absorb(Scope::Part("r1"), second, Instant::now(), at),
            3
        );
        let drift = inventory.take_drift();
        let changed = drift.iter().find(|(e, _)| e.resource == "i-1").unwrap();
        assert_eq!(changed.0.kind, EventKind::Changed);
        assert_eq!(changed.0.detail["state"]["before"], "running");
        assert_eq!(changed.0.detail["stage"]["after"], "test");
        assert_eq!(changed.0.detail["tags"]["stage"]["before"], "dev");
        assert_eq!(changed.0.org.as_deref(), Some("acme"));
        let mut rest: Vec<(EventKind, &str)> = drift
            .iter()
            .filter(|(e, _)| e.resource != "i-1")
            .map(|(e, _)| (e.kind, e.resource.as_str()))
            .collect();
        rest.sort_by_key(|(_, id)| *id);
        assert_eq!(
            rest,
            [(EventKind::Deleted, "i-2"), (EventKind::Created, "i-4")]
        );
        let ids: Vec<String> = inventory
            .instances
            .select(&["r1".to_string()], |_| true)
            .unwrap()
            .0
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["i-1", "i-3", "i-4"]);
    }

    #[test]
    fn pages_follow_the_last_id_and_copy_only_themselves() {
        let inventory = Inventory::new("e");
        let fleet = ["i-1", "i-2", "i-3", "i-4", "i-5"]
            .into_iter()
            .map(|id| {
                instance(
                    id,
                    InstanceState::Running,
                    if id == "i-3" { "prod" } else { "dev" },
                )
            })
            .collect();
        let at = OffsetDateTime::now_utc();
        inventory.absorb(Scope::Part("r1"), fleet, Instant::now(), at);
        let regions = ["r1".to_string()];
        let ids = |page: &[Instance]| page.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        let (first, next, as_of) = inventory
            .instances
            .page(&regions, |_| true, None, 2)
            .unwrap();
        assert_eq!(
            (ids(&first), next.as_deref(), as_of),
            (vec!["i-1".into(), "i-2".into()], Some("i-2"), at)
        );
        let dev = |i: &Instance| i.stage.as_deref() == Some("dev");
        let (second, next, _) = inventory
            .instances
            .page(&regions, dev, Some("i-2"), 2)
            .unwrap();
        assert_eq!(
            (ids(&second), next.as_deref()),
            (vec!["i-4".into(), "i-5".into()], None)
        );
        // An id that has gone since still finds its place.
        let (after_gone, _, _) = inventory
            .instances
            .page(&regions, |_| true, Some("i-25"), 2)
            .unwrap();
        assert_eq!(ids(&after_gone), ["i-3", "i-4"]);
        assert!(inventory
            .instances
            .page(&["r2".to_string()], |_| true, None, 2)
            .is_none());
    }

    #[test]
    fn overcasts_own_changes_are_never_drift() {
        let inventory = Inventory::new("e");
        let at = OffsetDateTime::now_utc();
        let fleet = vec![
            instance("i-1", InstanceState::Running, "dev"),
            instance("i-2", InstanceState::Running, "dev"),
        ];
        inventory.absorb(Scope::Part("r1"), fleet.clone(), Instant::now(), at);

        // A listing begun before overcast stopped i-1 keeps overcast's newer write.
        let began = Instant::now();
        inventory
            .instances
            .record([instance("i-1", InstanceState::Stopped, "dev")]);
        assert_eq!(
            inventory.absorb(Scope::Part("r1"), fleet.clone(), began, at),
            0
        );
        assert_eq!(
            inventory.instances.get("i-1").unwrap().state,
            InstanceState::Stopped
        );

        // What an operation is changing is taken as read, without drift.
        let guard = inventory.changing(&["i-2".to_string()]);
        let stopping = vec![
            instance("i-1", InstanceState::Stopped, "dev"),
            instance("i-2", InstanceState::Stopping, "dev"),
        ];
        assert_eq!(
            inventory.absorb(Scope::Part("r1"), stopping, Instant::now(), at),
            0
        );
        drop(guard);
        assert_eq!(
            inventory.instances.get("i-2").unwrap().state,
            InstanceState::Stopping
        );

        // A read of some ids says nothing about the others.
        let one = vec![instance("i-2", InstanceState::Stopped, "dev")];
        inventory.absorb(Scope::Keys(&["i-2".to_string()]), one, Instant::now(), at);
        assert_eq!(kinds(&inventory), [(EventKind::Changed, "i-2".to_string())]);
        assert!(inventory.instances.get("i-1").is_some());

        // A terminated instance leaving the backend's list is no drift.
        inventory
            .instances
            .record([instance("i-1", InstanceState::Terminated, "dev")]);
        let began = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let without_i1 = vec![instance("i-2", InstanceState::Stopped, "dev")];
        assert_eq!(
            inventory.absorb(Scope::Part("r1"), without_i1, began, at),
            0
        );

        // One overcast terminated and the backend no longer lists stays listed as
        // terminated (EC2's clients wait for that state), by any later read.
        inventory
            .instances
            .record_tombstones([instance("i-2", InstanceState::Terminated, "dev")]);
        let began = Instant::now();
        inventory.absorb::<Instance>(Scope::Part("r1"), vec![], began, at);
        inventory.absorb::<Instance>(Scope::Keys(&["i-2".to_string()]), vec![], began, at);
        assert_eq!(
            inventory.instances.get("i-2").map(|i| i.state),
            Some(InstanceState::Terminated)
        );
        assert!(inventory.take_drift().is_empty());
    }

    #[test]
    fn every_kind_drifts_in_what_a_person_sets_and_not_in_what_moves_on_its_own() {
        let inventory = Inventory::new("e");
        let at = OffsetDateTime::now_utc();
        let group = SecurityGroup {
            id: "sg-1".into(),
            name: "web".into(),
            description: "web".into(),
            region: "r1".into(),
            vpc_id: None,
            rules: Vec::new(),
            tags: BTreeMap::new(),
            org: Some("acme".into()),
        };
        inventory.absorb(Scope::Part("r1"), vec![group.clone()], Instant::now(), at);
        let mut opened = group.clone();
        opened.rules.push(
            serde_json::from_value::<Rule>(serde_json::json!(
                {"direction": "ingress", "protocol": "tcp", "from_port": 22, "to_port": 22,
                 "cidr": "0.0.0.0/0"}
            ))
            .unwrap(),
        );
        assert_eq!(
            inventory.absorb(Scope::Part("r1"), vec![opened], Instant::now(), at),
            1
        );
        let drift = inventory.take_drift();
        assert_eq!(drift[0].0.resource_kind, "security_group");
        assert_eq!(drift[0].0.detail["rules"]["before"], serde_json::json!([]));

        // A service's task counts move with its tasks; its desired count is someone's.
        let service = ContainerService {
            name: "api".into(),
            arn: Some("arn:svc/api".into()),
            cluster: "main".into(),
            region: "r1".into(),
            status: "ACTIVE".into(),
            desired_count: 2,
            ..ContainerService::default()
        };
        inventory.absorb(Scope::Part("r1"), vec![service.clone()], Instant::now(), at);
        let running = ContainerService {
            running_count: 2,
            ..service.clone()
        };
        assert_eq!(
            inventory.absorb(Scope::Part("r1"), vec![running.clone()], Instant::now(), at),
            0
        );
        let scaled = ContainerService {
            desired_count: 5,
            ..running
        };
        assert_eq!(
            inventory.absorb(Scope::Part("r1"), vec![scaled], Instant::now(), at),
            1
        );
        let drift = inventory.take_drift();
        assert_eq!(drift[0].0.resource, "arn:svc/api");
        assert_eq!(drift[0].0.detail["desired_count"]["after"], 5);

        // Buckets are listed whole: one gone outside overcast is deleted drift, one
        // overcast deleted is not.
        let bucket = |name: &str| Bucket {
            name: name.into(),
            region: "r1".into(),
            created_at: None,
            versioning: None,
            tags: BTreeMap::new(),
            org: None,
        };
        let whole = Scope::Part(WHOLE_ACCOUNT);
        inventory.absorb(whole, vec![bucket("a"), bucket("b")], Instant::now(), at);
        let began = Instant::now();
        inventory.buckets.record_gone(&["b".to_string()]);
        assert_eq!(inventory.absorb::<Bucket>(whole, vec![], began, at), 1);
        let drift = inventory.take_drift();
        assert_eq!(
            (drift[0].0.kind, drift[0].0.resource.as_str()),
            (EventKind::Deleted, "a")
        );
        assert!(inventory.buckets.knows(&[WHOLE_ACCOUNT.to_string()]));
    }
}
