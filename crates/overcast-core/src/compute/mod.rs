//! Instances: list and read them, with stage and org derived from their tags; launch,
//! modify and act on them as operations; read their consoles and regions. One module per
//! concern: `listing` (queries over the inventory, paging), `create`, `modify`, `lifecycle` (plans
//! and the change that carries out every action, single or bulk) and `wait` (polling for a
//! state).

mod create;
mod lifecycle;
mod listing;
mod modify;
mod wait;

pub(crate) use create::CreateInstances;
pub use create::{CreateInstancesRequest, Launch, MAX_COUNT};
pub(crate) use lifecycle::Lifecycle;
pub use lifecycle::{
    check_confirmation, make_plan, BulkAction, BulkOutcome, BulkRequest, InstanceActionRequest,
    Plan, PlannedCall, PlannedTarget, SkippedTarget,
};
pub use listing::InstanceQuery;
pub(crate) use modify::ModifyInstance;
pub use modify::ModifyInstanceRequest;

use overcast_types::{Error, Instance, InstanceState, Page, StagePolicy};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::access::{visible_or_404, visible_org};
use crate::app::Core;
use crate::auth::Principal;
use crate::errors::provider_error;

/// How many instances of an environment match a query, by stage and state: the fleet at
/// a glance, however large.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FleetSummary {
    pub total: usize,
    /// One entry per stage and state that has instances, by stage (none first), then state.
    pub counts: Vec<FleetCount>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub as_of: OffsetDateTime,
}

/// The instances of one stage in one state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FleetCount {
    /// The stage tag's value; none for instances without one.
    pub stage: Option<String>,
    pub state: InstanceState,
    pub count: usize,
}

/// A region of an environment and its zones.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegionView {
    pub name: String,
    pub zones: Vec<String>,
}

impl Core {
    /// Instances of an environment the caller may see, one page at a time, from the
    /// environment's inventory, saying when the backend was read for them.
    pub async fn instances(
        &self,
        principal: &Principal,
        env: &str,
        query: InstanceQuery,
    ) -> Result<Page<Instance>, Error> {
        let environment = self.environments.require(env)?;
        let visible = |i: &Instance| visible_org(principal, i.org.as_deref());
        let (items, next_page_token, as_of) = environment.list_page(visible, &query).await?;
        self.record_drift(environment).await;
        Ok(Page {
            as_of: Some(as_of),
            ..Page::of(items, next_page_token)
        })
    }

    /// The instances of an environment the caller may see that match the query, counted
    /// by stage and state, from the inventory.
    pub async fn fleet_summary(
        &self,
        principal: &Principal,
        env: &str,
        query: InstanceQuery,
    ) -> Result<FleetSummary, Error> {
        let environment = self.environments.require(env)?;
        let visible = |i: &Instance| visible_org(principal, i.org.as_deref());
        let (counts, as_of) = environment
            .count_by_stage_and_state(visible, &query)
            .await?;
        self.record_drift(environment).await;
        let counts: Vec<FleetCount> = counts
            .into_iter()
            .map(|((stage, state), count)| FleetCount {
                stage,
                state,
                count,
            })
            .collect();
        Ok(FleetSummary {
            total: counts.iter().map(|c| c.count).sum(),
            counts,
            as_of,
        })
    }

    /// One instance, if it exists and the caller may see it: the inventory's, or the
    /// backend's when `fresh` asks for it.
    pub async fn instance(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
    ) -> Result<Instance, Error> {
        self.instance_read(principal, env, id, false).await
    }

    /// [`Core::instance`], read at the backend when `fresh`.
    pub async fn instance_read(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
        fresh: bool,
    ) -> Result<Instance, Error> {
        let environment = self.environments.require(env)?;
        let found = environment.find(id, fresh).await?;
        self.record_drift(environment).await;
        visible_or_404(principal, found, "instance", id)
    }

    /// The names of an environment's regions, the first its default, without asking the
    /// backend anything.
    pub fn region_names(&self, env: &str) -> Result<Vec<String>, Error> {
        self.environments.require(env)?.regions()
    }

    /// An environment's provider kind (`aws`, `qemu`, `sim`, `proxmox`) and its stage
    /// policy, without asking the backend anything.
    pub fn provider_and_stages(&self, env: &str) -> Result<(&str, &StagePolicy), Error> {
        let environment = self.environments.require(env)?;
        Ok((environment.provider.kind(), &environment.stages))
    }

    /// The regions of an environment and their zones.
    pub async fn regions(&self, env: &str) -> Result<Vec<RegionView>, Error> {
        let environment = self.environments.require(env)?;
        let compute = environment.compute()?;
        let mut regions = Vec::new();
        for name in environment.regions()? {
            let zones = compute.zones(&name).await.map_err(provider_error)?;
            regions.push(RegionView { name, zones });
        }
        Ok(regions)
    }

    /// The serial console output of one instance.
    pub async fn console(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
    ) -> Result<String, Error> {
        let instance = self.instance(principal, env, id).await?;
        let environment = self.environments.require(env)?;
        environment
            .compute()?
            .console_output(&instance.region, id)
            .await
            .map_err(provider_error)
    }
}
