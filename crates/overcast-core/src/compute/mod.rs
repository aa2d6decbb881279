//! Instances: list and read them, with stage and org derived from their tags; launch,
//! modify and act on them as operations; read their consoles and regions. One module per
//! concern: `listing` (queries, paging snapshots), `create`, `modify`, `lifecycle` (plans
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
pub use listing::{page_of, InstanceQuery, Snapshots};
pub(crate) use modify::ModifyInstance;
pub use modify::ModifyInstanceRequest;

use overcast_types::{Error, Instance, Page};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

use crate::access::{visible_or_404, visible_org};
use crate::app::Core;
use crate::auth::Principal;
use crate::errors::provider_error;

/// A region of an environment and its zones.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegionView {
    pub name: String,
    pub zones: Vec<String>,
}

impl Core {
    /// Instances of an environment the caller may see, one page at a time. Later pages of
    /// a listing come from its snapshot (see [`Snapshots`]).
    pub async fn instances(
        &self,
        principal: &Principal,
        env: &str,
        query: InstanceQuery,
    ) -> Result<Page<Instance>, Error> {
        let environment = self.environments.require(env)?;
        let owner = format!(
            "{}|{env}|{:?}",
            principal.token_id,
            InstanceQuery {
                limit: 0,
                page_token: None,
                ..query.clone()
            }
        );
        let (snapshot, after) = match query.page_token.as_deref().map(|t| t.split_once('.')) {
            None => (None, None),
            Some(Some((snapshot, after))) => (Some(snapshot), Some(after)),
            Some(None) => {
                return Err(Error::invalid(
                    "page_token",
                    "is not a token this server gave",
                ))
            }
        };
        let kept = snapshot.and_then(|id| self.snapshots.get(id, &owner));
        let all = match &kept {
            Some(all) => all.clone(),
            None => {
                let visible = |i: &Instance| visible_org(principal, i.org.as_deref());
                Arc::new(environment.list(visible, &query).await?)
            }
        };
        let (items, next_page_token) =
            page_of(&all, after, query.limit, || match (snapshot, &kept) {
                (Some(id), Some(_)) => id.to_string(),
                _ => self.snapshots.keep(owner.clone(), all.clone()),
            });
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// One instance, if it exists and the caller may see it.
    pub async fn instance(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
    ) -> Result<Instance, Error> {
        let found = self.environments.require(env)?.find(id).await?;
        visible_or_404(principal, found, "instance", id)
    }

    /// The names of an environment's regions, the first its default, without asking the
    /// backend anything.
    pub fn region_names(&self, env: &str) -> Result<Vec<String>, Error> {
        self.environments.require(env)?.regions()
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
