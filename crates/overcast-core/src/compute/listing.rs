//! Listing instances: the query, and the environment's filtered listing (whole, or a page
//! after the last id shown), sorted by id, read from its inventory.

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

impl Environment {
    /// Fills in what overcast derives from tags: stage and org.
    pub fn decorate(&self, mut instance: Instance) -> Instance {
        self.redecorate(&mut instance);
        instance
    }

    /// Derives stage and org again, after a change of tags.
    pub fn redecorate(&self, instance: &mut Instance) {
        self.set_owner(instance);
        instance.stage = instance.tags.get(&self.stages.tag_key).cloned();
    }

    /// Every instance the caller may see that matches the query, sorted by id, from the
    /// inventory (filled first if it has not read every region; read afresh if the query
    /// says `fresh`).
    pub async fn list(
        &self,
        visible: impl Fn(&Instance) -> bool,
        query: &InstanceQuery,
    ) -> Result<Vec<Instance>, Error> {
        let keep = |i: &Instance| visible(i) && query.matches(&self.stages.tag_key, i);
        let (instances, _) = self
            .listed(query.region.as_deref(), query.fresh, keep)
            .await?;
        Ok(instances)
    }

    /// One page of [`Environment::list`], after the query's page token: the instances, the
    /// next page's token (the last id shown) and when the backend was read for them.
    pub async fn list_page(
        &self,
        visible: impl Fn(&Instance) -> bool,
        query: &InstanceQuery,
    ) -> Result<(Vec<Instance>, Option<String>, OffsetDateTime), Error> {
        let regions = self
            .known_parts::<Instance>(query.region.as_deref(), query.fresh)
            .await?;
        let keep = |i: &Instance| visible(i) && query.matches(&self.stages.tag_key, i);
        self.inventory
            .instances
            .page(&regions, keep, query.page_token.as_deref(), query.limit)
            .ok_or_else(|| self.not_read("instance"))
    }

    /// How many instances the caller may see match the query (its page and limit aside),
    /// by stage and state, and when the backend was read for them.
    pub async fn count_by_stage_and_state(
        &self,
        visible: impl Fn(&Instance) -> bool,
        query: &InstanceQuery,
    ) -> Result<
        (
            BTreeMap<(Option<String>, InstanceState), usize>,
            OffsetDateTime,
        ),
        Error,
    > {
        let regions = self
            .known_parts::<Instance>(query.region.as_deref(), query.fresh)
            .await?;
        let keep = |i: &Instance| visible(i) && query.matches(&self.stages.tag_key, i);
        self.inventory
            .instances
            .count_by(&regions, keep, |i| (i.stage.clone(), i.state))
            .ok_or_else(|| self.not_read("instance"))
    }

    /// One instance, from whichever region has it: the inventory's, or the backend's
    /// when the inventory does not hold it or `fresh` asks for it.
    pub async fn find(&self, id: &str, fresh: bool) -> Result<Option<Instance>, Error> {
        if !fresh {
            if let Some(instance) = self.inventory.instances.get(id) {
                return Ok(Some(instance));
            }
        }
        let found = self.read_instances(None, &[id.to_string()]).await?;
        Ok(found.into_iter().next())
    }
}
