//! The inventory: each environment's instances kept in the server, so lists, gets and the
//! selectors of bulk plans answer from memory instead of a full backend listing per
//! request. It is filled by a refresh (one listing per region, concurrently), refreshed in
//! the background at `inventory_refresh_secs`, and written at once by overcast's own
//! changes. Every read of the backend (a refresh, a `fresh` read, a bulk action's re-check
//! of its targets) is compared with what the inventory held: what changed without overcast
//! (created, changed in state, stage or tags, or deleted) is drift, queued as events.
//!
//! Each server keeps its own inventory (see ARCHITECTURE.md): nothing to coordinate, and a
//! change made through another server shows here at its next refresh.

use overcast_provider::InstanceFilter;
use overcast_store::{EventFilter, PageRequest};
use overcast_types::{Error, Event, EventKind, Instance, Page};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

use crate::app::Core;
use crate::auth::Principal;
use crate::environments::Environment;
use crate::errors::{provider_error, store_error};

/// How long overcast's own write of an instance outranks a listing that began before it.
const OWN_WRITE_KEPT: Duration = Duration::from_secs(600);

/// One environment's instances as last read or written.
pub struct Inventory {
    environment: String,
    state: RwLock<State>,
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

#[derive(Default)]
struct State {
    instances: BTreeMap<String, Instance>,
    /// When each region was last read whole.
    read_at: BTreeMap<String, OffsetDateTime>,
    /// When overcast last wrote each instance itself.
    written: HashMap<String, Instant>,
}

/// What a backend read covered: a whole region, or some instances by id.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Region(&'a str),
    Ids(&'a [String]),
}

/// What one refresh did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Refreshed {
    pub environment: String,
    /// The regions read, each with its instance count or the reason it could not be read.
    pub regions: Vec<RegionRead>,
    /// Instances the inventory holds now.
    pub instances: usize,
    /// Changes made outside overcast that this refresh saw.
    pub drift: usize,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub as_of: OffsetDateTime,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RegionRead {
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
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
            state: RwLock::default(),
            changing: Mutex::default(),
            refreshing: tokio::sync::Mutex::new(()),
            drift: Mutex::default(),
            drift_ready: Arc::new(tokio::sync::Notify::new()),
        }
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether every one of `regions` has been read whole.
    pub fn knows(&self, regions: &[String]) -> bool {
        let state = self.read_state();
        regions.iter().all(|r| state.read_at.contains_key(r))
    }

    /// The instances of `regions` that `keep` keeps, sorted by id; none while a region has
    /// not been read.
    pub fn select(
        &self,
        regions: &[String],
        keep: impl Fn(&Instance) -> bool,
    ) -> Option<Vec<Instance>> {
        let state = self.read_state();
        if !regions.iter().all(|r| state.read_at.contains_key(r)) {
            return None;
        }
        let instances = state
            .instances
            .values()
            .filter(|i| regions.contains(&i.region) && keep(i))
            .cloned()
            .collect();
        Some(instances)
    }

    /// One page of [`Inventory::select`]: at most `limit` instances after the id `after`,
    /// the last one's id when more follow, and the time of the oldest read. Only the page
    /// is copied, whatever the inventory holds.
    pub fn page(
        &self,
        regions: &[String],
        keep: impl Fn(&Instance) -> bool,
        after: Option<&str>,
        limit: u32,
    ) -> Option<(Vec<Instance>, Option<String>, OffsetDateTime)> {
        use std::ops::Bound;
        let state = self.read_state();
        let as_of = regions
            .iter()
            .map(|r| state.read_at.get(r).copied())
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()?;
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_string()));
        let mut matching = state
            .instances
            .range::<String, _>((start, Bound::Unbounded))
            .map(|(_, i)| i)
            .filter(|i| regions.contains(&i.region) && keep(i));
        let items: Vec<Instance> = matching
            .by_ref()
            .take(limit.max(1) as usize)
            .cloned()
            .collect();
        let next = match (matching.next(), items.last()) {
            (Some(_), Some(last)) => Some(last.id.clone()),
            _ => None,
        };
        Some((items, next, as_of))
    }

    /// One instance, if the inventory holds it.
    pub fn get(&self, id: &str) -> Option<Instance> {
        self.read_state().instances.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.read_state().instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// overcast's own write: these instances are as given now.
    pub fn record(&self, instances: impl IntoIterator<Item = Instance>) {
        let mut state = self.write_state();
        let now = Instant::now();
        for instance in instances {
            state.written.insert(instance.id.clone(), now);
            state.instances.insert(instance.id.clone(), instance);
        }
    }

    /// overcast's own write: these instances are gone.
    pub fn record_gone(&self, ids: &[String]) {
        let mut state = self.write_state();
        let now = Instant::now();
        for id in ids {
            state.written.insert(id.clone(), now);
            state.instances.remove(id);
        }
    }

    /// overcast's own write: changes each of these instances the inventory holds.
    pub fn update(&self, ids: &[String], change: impl Fn(Instance) -> Instance) {
        let mut state = self.write_state();
        let now = Instant::now();
        for id in ids {
            if let Some(instance) = state.instances.remove(id) {
                state.instances.insert(id.clone(), change(instance));
                state.written.insert(id.clone(), now);
            }
        }
    }

    /// Takes in what a backend read found (`listed`, for `scope`, the read having begun at
    /// `began`, wall time `at`), and queues the drift it shows. An instance overcast wrote
    /// after the read began keeps overcast's version; one an operation is changing, or of a
    /// region never read before, is taken without drift. Answers how much drift it saw.
    pub fn absorb(
        &self,
        scope: Scope<'_>,
        listed: Vec<Instance>,
        began: Instant,
        at: OffsetDateTime,
    ) -> usize {
        let changing = lock(&self.changing).clone();
        let mut state = self.write_state();
        let own_newer = |state: &State, id: &str| state.written.get(id).is_some_and(|w| *w > began);
        let mut drift = Vec::new();
        let mut seen = BTreeSet::new();
        for instance in listed {
            seen.insert(instance.id.clone());
            if own_newer(&state, &instance.id) {
                continue;
            }
            let quiet = changing.contains_key(&instance.id)
                || !state.read_at.contains_key(&instance.region);
            let before = state
                .instances
                .insert(instance.id.clone(), instance.clone());
            if quiet {
                continue;
            }
            let change = match before {
                None => Some((EventKind::Created, describe(&instance))),
                Some(before) => difference(&before, &instance).map(|d| (EventKind::Changed, d)),
            };
            if let Some((kind, detail)) = change {
                drift.push((kind, detail, instance.id.clone(), instance.org.clone()));
            }
        }
        // What a read that covered it did not find has gone.
        let in_scope = |i: &Instance| match scope {
            Scope::Region(region) => i.region == region,
            Scope::Ids(ids) => ids.contains(&i.id),
        };
        let gone: Vec<String> = state
            .instances
            .values()
            .filter(|i| in_scope(i) && !seen.contains(&i.id) && !own_newer(&state, &i.id))
            .map(|i| i.id.clone())
            .collect();
        let mut deleted = Vec::new();
        for id in gone {
            if let Some(before) = state.instances.remove(&id) {
                let quiet = changing.contains_key(&id)
                    || before.state.is_gone()
                    || !state.read_at.contains_key(&before.region);
                if !quiet {
                    deleted.push(before);
                }
            }
        }
        if let Scope::Region(region) = scope {
            state.read_at.insert(region.to_string(), at);
        }
        state.written.retain(|_, w| w.elapsed() < OWN_WRITE_KEPT);
        let events: Vec<(Event, String)> = drift
            .into_iter()
            .map(|(kind, detail, id, org)| self.event(kind, &id, org, detail, at))
            .chain(deleted.iter().map(|before| {
                self.event(
                    EventKind::Deleted,
                    &before.id,
                    before.org.clone(),
                    describe(before),
                    at,
                )
            }))
            .collect();
        drop(state);
        let count = events.len();
        if count > 0 {
            lock(&self.drift).extend(events);
            self.drift_ready.notify_one();
        }
        count
    }

    /// An event and its digest: the change itself, the same for every server that sees it.
    fn event(
        &self,
        kind: EventKind,
        id: &str,
        org: Option<String>,
        detail: Value,
        at: OffsetDateTime,
    ) -> (Event, String) {
        let digest = Sha256::digest(format!(
            "{}|{id}|{}|{detail}",
            self.environment,
            kind.as_str()
        ));
        let event = Event {
            id: crate::ids::new_id("ev"),
            at,
            environment: self.environment.clone(),
            kind,
            resource_kind: "instance".into(),
            resource: id.to_string(),
            org,
            detail,
        };
        (event, hex::encode(&digest[..16]))
    }

    /// The drift queued so far, and its digests, to record.
    pub fn take_drift(&self) -> Vec<(Event, String)> {
        std::mem::take(&mut *lock(&self.drift))
    }
}

/// What matters of an instance to a person reading about it.
fn describe(instance: &Instance) -> Value {
    json!({
        "region": instance.region,
        "state": instance.state,
        "stage": instance.stage,
        "name": instance.name,
        "instance_type": instance.instance_type,
        "tags": instance.tags,
    })
}

/// What differs between two reads of an instance in state, stage or tags; none when
/// nothing does.
fn difference(before: &Instance, after: &Instance) -> Option<Value> {
    let mut detail = serde_json::Map::new();
    if before.state != after.state {
        detail.insert(
            "state".into(),
            json!({"before": before.state, "after": after.state}),
        );
    }
    if before.stage != after.stage {
        detail.insert(
            "stage".into(),
            json!({"before": before.stage, "after": after.stage}),
        );
    }
    if before.tags != after.tags {
        let keys: BTreeSet<&String> = before.tags.keys().chain(after.tags.keys()).collect();
        let changed: BTreeMap<&String, Value> = keys
            .into_iter()
            .filter(|k| before.tags.get(*k) != after.tags.get(*k))
            .map(|k| {
                (
                    k,
                    json!({"before": before.tags.get(k), "after": after.tags.get(k)}),
                )
            })
            .collect();
        detail.insert("tags".into(), json!(changed));
    }
    (!detail.is_empty()).then_some(Value::Object(detail))
}

impl Environment {
    /// Reads every region of the backend (concurrently, one listing each) into the
    /// inventory; a region that cannot be read keeps what was known of it.
    pub async fn refresh(&self) -> Result<Refreshed, Error> {
        let _one = self.inventory.refreshing.lock().await;
        self.refresh_held().await
    }

    /// Fills the inventory unless every region has been read; a caller that finds a
    /// refresh under way waits for it rather than starting another.
    pub async fn know(&self) -> Result<(), Error> {
        let regions = self.regions()?;
        if self.inventory.knows(&regions) {
            return Ok(());
        }
        let _one = self.inventory.refreshing.lock().await;
        if self.inventory.knows(&regions) {
            return Ok(());
        }
        let refreshed = self.refresh_held().await?;
        // A region never read cannot be answered from memory.
        match refreshed.regions.iter().find(|r| r.error.is_some()) {
            Some(failed) if !self.inventory.knows(&regions) => Err(Error::unavailable(
                "backend_unavailable",
                format!(
                    "region {} of environment {} cannot be read: {}",
                    failed.region,
                    self.name,
                    failed.error.as_deref().unwrap_or_default()
                ),
                5,
            )),
            _ => Ok(()),
        }
    }

    async fn refresh_held(&self) -> Result<Refreshed, Error> {
        let compute = self.compute()?;
        let regions = self.regions()?;
        let began = Instant::now();
        let at = OffsetDateTime::now_utc();
        let listings = futures::future::join_all(regions.iter().map(|region| {
            let filter = InstanceFilter {
                region: Some(region.clone()),
                ..InstanceFilter::default()
            };
            async move { compute.list_instances(&filter).await }
        }))
        .await;
        let mut reads = Vec::new();
        let mut drift = 0;
        let mut failure = None;
        for (region, listing) in regions.iter().zip(listings) {
            match listing {
                Ok(listed) => {
                    let count = listed.len();
                    let listed = listed.into_iter().map(|i| self.decorate(i)).collect();
                    drift += self
                        .inventory
                        .absorb(Scope::Region(region), listed, began, at);
                    reads.push(RegionRead {
                        region: region.clone(),
                        instances: Some(count),
                        error: None,
                    });
                }
                Err(e) => {
                    reads.push(RegionRead {
                        region: region.clone(),
                        instances: None,
                        error: Some(e.message.clone()),
                    });
                    failure.get_or_insert(e);
                }
            }
        }
        // Only a refresh that read nothing at all is an error; a partial one says which
        // regions it could not read.
        if let (Some(e), true) = (failure, reads.iter().all(|r| r.error.is_some())) {
            return Err(provider_error(e));
        }
        Ok(Refreshed {
            environment: self.name.clone(),
            regions: reads,
            instances: self.inventory.len(),
            drift,
            as_of: at,
        })
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
        let filter = InstanceFilter {
            region: region.map(str::to_string),
            ids: ids.to_vec(),
            ..InstanceFilter::default()
        };
        let found: Vec<Instance> = compute
            .list_instances(&filter)
            .await
            .map_err(provider_error)?
            .into_iter()
            .map(|i| self.decorate(i))
            .collect();
        self.inventory
            .absorb(Scope::Ids(ids), found.clone(), began, at);
        Ok(found)
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
            environment.inventory.len(),
        );
        self.record_drift(environment).await;
        refreshed
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
    use overcast_types::InstanceState;

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
            inventory.absorb(Scope::Region("r1"), first, Instant::now(), at),
            0
        );
        assert!(inventory.knows(&["r1".to_string()]));
        assert!(!inventory.knows(&["r2".to_string()]));

        // i-1 stopped and promoted outside, i-2 deleted, i-4 made outside.
        let second = vec![
            instance("i-1", InstanceState::Stopped, "test"),
            instance("i-3", InstanceState::Running, "dev"),
            instance("i-4", InstanceState::Running, "dev"),
        ];
        assert_eq!(
            inventory.absorb(Scope::Region("r1"), second, Instant::now(), at),
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
            .select(&["r1".to_string()], |_| true)
            .unwrap()
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
        inventory.absorb(Scope::Region("r1"), fleet, Instant::now(), at);
        let regions = ["r1".to_string()];
        let ids = |page: &[Instance]| page.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        let (first, next, as_of) = inventory.page(&regions, |_| true, None, 2).unwrap();
        assert_eq!(
            (ids(&first), next.as_deref(), as_of),
            (vec!["i-1".into(), "i-2".into()], Some("i-2"), at)
        );
        let dev = |i: &Instance| i.stage.as_deref() == Some("dev");
        let (second, next, _) = inventory.page(&regions, dev, Some("i-2"), 2).unwrap();
        assert_eq!(
            (ids(&second), next.as_deref()),
            (vec!["i-4".into(), "i-5".into()], None)
        );
        // An id that has gone since still finds its place.
        let (after_gone, _, _) = inventory.page(&regions, |_| true, Some("i-25"), 2).unwrap();
        assert_eq!(ids(&after_gone), ["i-3", "i-4"]);
        assert!(inventory
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
        inventory.absorb(Scope::Region("r1"), fleet.clone(), Instant::now(), at);

        // A listing begun before overcast stopped i-1 keeps overcast's newer write.
        let began = Instant::now();
        inventory.record([instance("i-1", InstanceState::Stopped, "dev")]);
        assert_eq!(
            inventory.absorb(Scope::Region("r1"), fleet.clone(), began, at),
            0
        );
        assert_eq!(inventory.get("i-1").unwrap().state, InstanceState::Stopped);

        // What an operation is changing is taken as read, without drift.
        let guard = inventory.changing(&["i-2".to_string()]);
        let stopping = vec![
            instance("i-1", InstanceState::Stopped, "dev"),
            instance("i-2", InstanceState::Stopping, "dev"),
        ];
        assert_eq!(
            inventory.absorb(Scope::Region("r1"), stopping, Instant::now(), at),
            0
        );
        drop(guard);
        assert_eq!(inventory.get("i-2").unwrap().state, InstanceState::Stopping);

        // A read of some ids says nothing about the others.
        let one = vec![instance("i-2", InstanceState::Stopped, "dev")];
        inventory.absorb(Scope::Ids(&["i-2".to_string()]), one, Instant::now(), at);
        assert_eq!(kinds(&inventory), [(EventKind::Changed, "i-2".to_string())]);
        assert!(inventory.get("i-1").is_some());

        // A terminated instance leaving the backend's list is no drift.
        inventory.record([instance("i-1", InstanceState::Terminated, "dev")]);
        let began = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let without_i1 = vec![instance("i-2", InstanceState::Stopped, "dev")];
        assert_eq!(
            inventory.absorb(Scope::Region("r1"), without_i1, began, at),
            0
        );
    }
}
