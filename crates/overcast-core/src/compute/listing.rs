//! Listing instances: the query, the environment's filtered and sorted listing with stage
//! and org derived from tags, and the snapshots that page through one listing at the cost
//! of one backend call.

use overcast_provider::InstanceFilter;
use overcast_types::{tags, Error, Instance, InstanceState};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::environments::Environment;
use crate::errors::provider_error;

/// Which instances to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceQuery {
    pub stage: Option<String>,
    pub state: Option<InstanceState>,
    pub name: Option<String>,
    pub region: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub limit: u32,
    pub page_token: Option<String>,
}

/// How long a listing stays for its later pages.
const SNAPSHOT_TTL: Duration = Duration::from_secs(60);
/// The most listings kept at once; the oldest go first.
const MAX_SNAPSHOTS: usize = 256;

/// Listings kept for their later pages. A backend cannot sort by id or filter by org across
/// regions, so a listing is fetched whole; keeping it for a minute makes paging through N
/// instances cost one backend listing instead of one per page, and makes the pages of one
/// listing consistent. A listing is kept for the token and query that made it, never
/// shown to another caller.
#[derive(Default)]
pub struct Snapshots {
    kept: std::sync::Mutex<HashMap<String, Snapshot>>,
}

struct Snapshot {
    owner: String,
    taken: Instant,
    instances: Arc<Vec<Instance>>,
}

impl Snapshots {
    /// The listing `id`, if it is still kept for `owner`.
    pub fn get(&self, id: &str, owner: &str) -> Option<Arc<Vec<Instance>>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(id)
            .filter(|s| s.owner == owner && s.taken.elapsed() < SNAPSHOT_TTL)
            .map(|s| s.instances.clone())
    }

    /// Keeps a listing for `owner`; returns its id.
    pub fn keep(&self, owner: String, instances: Arc<Vec<Instance>>) -> String {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|_, s| s.taken.elapsed() < SNAPSHOT_TTL);
        if kept.len() >= MAX_SNAPSHOTS {
            if let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, s)| s.taken)
                .map(|(id, _)| id.clone())
            {
                kept.remove(&oldest);
            }
        }
        let id = crate::ids::new_id("ls");
        kept.insert(
            id.clone(),
            Snapshot {
                owner,
                taken: Instant::now(),
                instances,
            },
        );
        id
    }
}

/// One page of a sorted listing after the id `after`, and the token of the next page:
/// `SNAPSHOT.LAST_ID`. The last id alone still pages correctly once the snapshot is gone.
pub fn page_of(
    all: &[Instance],
    after: Option<&str>,
    limit: u32,
    snapshot: impl FnOnce() -> String,
) -> (Vec<Instance>, Option<String>) {
    let start = after.map_or(0, |a| all.partition_point(|i| i.id.as_str() <= a));
    let end = (start + limit.max(1) as usize).min(all.len());
    let page = all[start..end].to_vec();
    let next = (end < all.len()).then(|| format!("{}.{}", snapshot(), all[end - 1].id));
    (page, next)
}

impl Environment {
    /// Fills in what overcast derives from tags: stage and org.
    pub fn decorate(&self, instance: Instance) -> Instance {
        let mut instance = self.with_owner(instance);
        instance.stage = instance.tags.get(&self.stages.tag_key).cloned();
        instance
    }

    /// Every instance the caller may see that matches the query, sorted by id.
    pub async fn list(
        &self,
        visible: impl Fn(&Instance) -> bool,
        query: &InstanceQuery,
    ) -> Result<Vec<Instance>, Error> {
        let compute = self.compute()?;
        let region = match &query.region {
            Some(r) => Some(self.check_region(Some(r))?),
            None => None,
        };
        let mut tag_filter = query.tags.clone();
        if let Some(stage) = &query.stage {
            tag_filter.insert(self.stages.tag_key.clone(), stage.clone());
        }
        if let Some(name) = &query.name {
            tag_filter.insert(tags::NAME.into(), name.clone());
        }
        let filter = InstanceFilter {
            region,
            ids: vec![],
            tags: tag_filter,
            states: query.state.into_iter().collect(),
        };
        let mut instances: Vec<Instance> = compute
            .list_instances(&filter)
            .await
            .map_err(provider_error)?
            .into_iter()
            .map(|i| self.decorate(i))
            .filter(|i| visible(i))
            .filter(|i| query.state.is_none_or(|s| i.state == s))
            .collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(instances)
    }

    /// One instance, from whichever region has it.
    pub async fn find(&self, id: &str) -> Result<Option<Instance>, Error> {
        let compute = self.compute()?;
        let filter = InstanceFilter {
            ids: vec![id.to_string()],
            ..InstanceFilter::default()
        };
        let found = compute
            .list_instances(&filter)
            .await
            .map_err(provider_error)?;
        Ok(found.into_iter().next().map(|i| self.decorate(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str) -> Instance {
        Instance::new(id, "e", "r", InstanceState::Running)
    }

    #[test]
    fn pages_follow_the_last_id_and_name_their_snapshot() {
        let all: Vec<Instance> = ["i-1", "i-2", "i-3", "i-4", "i-5"]
            .into_iter()
            .map(instance)
            .collect();
        let ids = |page: &[Instance]| page.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        let (first, next) = page_of(&all, None, 2, || "ls_x".into());
        assert_eq!(
            (ids(&first), next.as_deref()),
            (vec!["i-1".to_string(), "i-2".into()], Some("ls_x.i-2"))
        );
        let (second, _) = page_of(&all, Some("i-2"), 2, || "ls_x".into());
        assert_eq!(ids(&second), ["i-3", "i-4"]);
        let (last, next) = page_of(&all, Some("i-4"), 2, || unreachable!("no next page"));
        assert_eq!((ids(&last), next), (vec!["i-5".to_string()], None));
        // An id that has gone since still finds its place.
        let (after_gone, _) = page_of(&all, Some("i-25"), 2, || "ls_x".into());
        assert_eq!(ids(&after_gone), ["i-3", "i-4"]);
    }

    #[test]
    fn snapshots_are_kept_for_their_owner_only() {
        let snapshots = Snapshots::default();
        let id = snapshots.keep("tok_a|q".into(), Arc::new(vec![instance("i-1")]));
        assert_eq!(snapshots.get(&id, "tok_a|q").unwrap().len(), 1);
        assert!(snapshots.get(&id, "tok_b|q").is_none());
        assert!(snapshots.get("ls_unknown", "tok_a|q").is_none());
    }
}
