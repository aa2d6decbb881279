//! Listing instances: the query, and the environment's filtered listing, sorted by id,
//! read from its inventory, with stage and org derived from tags; paging by the last id.

use overcast_types::{tags, Error, Instance, InstanceState};
use std::collections::BTreeMap;
use time::OffsetDateTime;

use crate::environments::Environment;

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
    /// Read the backend now rather than answer from the inventory.
    pub fresh: bool,
}

impl InstanceQuery {
    /// Whether an instance matches the query's state, stage (its tag `stage_key`), name
    /// and tags.
    pub fn matches(&self, stage_key: &str, instance: &Instance) -> bool {
        self.state.is_none_or(|s| instance.state == s)
            && self
                .stage
                .as_ref()
                .is_none_or(|s| instance.tags.get(stage_key) == Some(s))
            && self
                .name
                .as_ref()
                .is_none_or(|n| instance.tags.get(tags::NAME) == Some(n))
            && self
                .tags
                .iter()
                .all(|(k, v)| instance.tags.get(k) == Some(v))
    }
}

/// One page of a listing sorted by id after the id `after`, and the token of the next
/// page: the last id shown, which finds its place even once that instance has gone.
pub fn page_of(
    all: &[Instance],
    after: Option<&str>,
    limit: u32,
) -> (Vec<Instance>, Option<String>) {
    let start = after.map_or(0, |a| all.partition_point(|i| i.id.as_str() <= a));
    let end = (start + limit.max(1) as usize).min(all.len());
    let page = all[start..end].to_vec();
    let next = (end < all.len()).then(|| all[end - 1].id.clone());
    (page, next)
}

impl Environment {
    /// Fills in what overcast derives from tags: stage and org.
    pub fn decorate(&self, instance: Instance) -> Instance {
        let mut instance = self.with_owner(instance);
        instance.stage = instance.tags.get(&self.stages.tag_key).cloned();
        instance
    }

    /// Every instance the caller may see that matches the query, sorted by id, from the
    /// inventory (filled first if it has not read every region; read afresh if the query
    /// says `fresh`), and when the backend was read for it.
    pub async fn list(
        &self,
        visible: impl Fn(&Instance) -> bool,
        query: &InstanceQuery,
    ) -> Result<(Vec<Instance>, OffsetDateTime), Error> {
        let regions = match &query.region {
            Some(r) => vec![self.check_region(Some(r))?],
            None => self.regions()?,
        };
        if query.fresh {
            self.refresh().await?;
        } else {
            self.know().await?;
        }
        let keep = |i: &Instance| visible(i) && query.matches(&self.stages.tag_key, i);
        self.inventory.select(&regions, keep).ok_or_else(|| {
            Error::unavailable(
                "backend_unavailable",
                format!(
                    "the instances of environment {} have not been read yet",
                    self.name
                ),
                5,
            )
        })
    }

    /// One instance, from whichever region has it: the inventory's, or the backend's
    /// when the inventory does not hold it or `fresh` asks for it.
    pub async fn find(&self, id: &str, fresh: bool) -> Result<Option<Instance>, Error> {
        if !fresh {
            if let Some(instance) = self.inventory.get(id) {
                return Ok(Some(instance));
            }
        }
        let found = self.read_instances(None, &[id.to_string()]).await?;
        Ok(found.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str) -> Instance {
        Instance::new(id, "e", "r", InstanceState::Running)
    }

    #[test]
    fn pages_follow_the_last_id() {
        let all: Vec<Instance> = ["i-1", "i-2", "i-3", "i-4", "i-5"]
            .into_iter()
            .map(instance)
            .collect();
        let ids = |page: &[Instance]| page.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        let (first, next) = page_of(&all, None, 2);
        assert_eq!(
            (ids(&first), next.as_deref()),
            (vec!["i-1".to_string(), "i-2".into()], Some("i-2"))
        );
        let (second, _) = page_of(&all, Some("i-2"), 2);
        assert_eq!(ids(&second), ["i-3", "i-4"]);
        let (last, next) = page_of(&all, Some("i-4"), 2);
        assert_eq!((ids(&last), next), (vec!["i-5".to_string()], None));
        // An id that has gone since still finds its place.
        let (after_gone, _) = page_of(&all, Some("i-25"), 2);
        assert_eq!(ids(&after_gone), ["i-3", "i-4"]);
    }
}
