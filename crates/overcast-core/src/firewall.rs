//! Security groups: list, get, create, delete (refused while in use, as AWS does, even where
//! an emulator would not), and rules. Every change is an operation whose steps are safe to
//! re-run after a crash.

use crate::auth::Principal;
use crate::{to_input, visible_only, visible_org, Core, Idempotency};
use async_trait::async_trait;
use overcast_provider::InstanceFilter;
use overcast_types::Operation;
use overcast_types::Role;
use overcast_types::{tags, Error, Rule, SecurityGroup, TargetOutcome, TargetResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

use crate::environments::{Environment, Environments};
use crate::instances::check_tags;
use crate::operations::{Executor, Step};
use crate::provider_error;

pub const CREATE_KIND: &str = "security_group.create";
pub const DELETE_KIND: &str = "security_group.delete";
pub const ADD_RULE_KIND: &str = "security_group.add_rule";
pub const REMOVE_RULE_KIND: &str = "security_group.remove_rule";

/// A request for a new security group.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    pub name: String,
    pub description: String,
    /// Default: the environment's first region.
    #[serde(default)]
    pub region: Option<String>,
    /// Default: the region's default VPC.
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl CreateGroupRequest {
    fn validate(&self) -> Result<(), Error> {
        if self.name.is_empty() || self.name.len() > 255 || self.name.starts_with("sg-") {
            return Err(Error::invalid(
                "name",
                "use 1 to 255 characters, not starting with sg-",
            ));
        }
        if self.description.is_empty() || self.description.len() > 255 {
            return Err(Error::invalid("description", "use 1 to 255 characters"));
        }
        check_tags(&self.tags)
    }
}

/// One change to security groups, as an operation records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum FirewallChange {
    Create {
        region: String,
        name: String,
        description: String,
        vpc_id: Option<String>,
        tags: BTreeMap<String, String>,
    },
    Delete {
        region: String,
        id: String,
    },
    AddRule {
        region: String,
        id: String,
        rule: Rule,
    },
    RemoveRule {
        region: String,
        id: String,
        rule: Rule,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FirewallInput {
    pub environment: String,
    pub change: FirewallChange,
}

impl Environment {
    /// A group by id, from whichever region has it.
    pub async fn find_group(&self, id: &str) -> Result<Option<SecurityGroup>, Error> {
        let found = self
            .firewall()?
            .list_groups(None, &[id.to_string()])
            .await
            .map_err(provider_error)?;
        Ok(found.into_iter().next().map(|g| self.own(g)))
    }

    /// What uses a group: instances that carry it and other groups whose rules name it.
    pub async fn users_of(&self, region: &str, id: &str) -> Result<Vec<String>, Error> {
        let filter = InstanceFilter {
            region: Some(region.to_string()),
            ..InstanceFilter::default()
        };
        let instances = self
            .compute()?
            .list_instances(&filter)
            .await
            .map_err(provider_error)?;
        let mut users: Vec<String> = instances
            .into_iter()
            .filter(|i| !i.state.is_gone() && i.security_groups.iter().any(|g| g == id))
            .map(|i| format!("instance {}", i.id))
            .collect();
        let groups = self
            .firewall()?
            .list_groups(Some(region), &[])
            .await
            .map_err(provider_error)?;
        users.extend(
            groups
                .into_iter()
                .filter(|g| {
                    g.id != id
                        && g.rules
                            .iter()
                            .any(|r| r.source_group.as_deref() == Some(id))
                })
                .map(|g| format!("a rule of {}", g.id)),
        );
        Ok(users)
    }
}

/// Refuses to delete a group something uses, as AWS does with DependencyViolation.
pub(crate) async fn check_unused(env: &Environment, region: &str, id: &str) -> Result<(), Error> {
    let users = env.users_of(region, id).await?;
    if users.is_empty() {
        Ok(())
    } else {
        Err(Error::conflict(
            "in_use",
            format!("security group {id} is in use by {}", users.join(", ")),
        ))
    }
}

pub(crate) struct FirewallExecutor {
    pub environments: Arc<Environments>,
}

#[async_trait]
impl Executor for FirewallExecutor {
    async fn run(&self, step: &mut Step) -> Result<(), Error> {
        let input: FirewallInput = step.input()?;
        let env = self.environments.require(&input.environment)?;
        let firewall = env.firewall()?;
        step.set_total(1).await?;
        let (target, detail) = match input.change {
            FirewallChange::Create {
                region,
                name,
                description,
                vpc_id,
                mut tags,
            } => {
                // A re-run finds the group an earlier run made by its operation tag.
                let operation_id = step.operation().id.clone();
                tags.insert(tags::OPERATION.into(), operation_id.clone());
                let existing = firewall
                    .list_groups(Some(&region), &[])
                    .await
                    .map_err(provider_error)?
                    .into_iter()
                    .find(|g| g.tags.get(tags::OPERATION) == Some(&operation_id));
                let group = match existing {
                    Some(group) => group,
                    None => firewall
                        .create_group(&region, &name, &description, vpc_id.as_deref(), &tags)
                        .await
                        .map_err(provider_error)?,
                };
                let group = env.own(group);
                let detail =
                    serde_json::to_value(&group).map_err(|e| Error::internal(e.to_string()))?;
                (group.id, Some(detail))
            }
            FirewallChange::Delete { region, id } => {
                check_unused(env, &region, &id).await?;
                match firewall.delete_group(&region, &id).await {
                    Err(e) if e.code == "security_group_not_found" => {}
                    other => other.map_err(provider_error)?,
                }
                (id, None)
            }
            FirewallChange::AddRule { region, id, rule } => {
                firewall
                    .add_rule(&region, &id, &rule)
                    .await
                    .map_err(provider_error)?;
                (id, None)
            }
            FirewallChange::RemoveRule { region, id, rule } => {
                firewall
                    .remove_rule(&region, &id, &rule)
                    .await
                    .map_err(provider_error)?;
                (id, None)
            }
        };
        step.record(TargetResult {
            target,
            outcome: TargetOutcome::Done,
            message: None,
            detail,
        })
        .await
    }
}

/// The firewall change a create request asks for, checked.
pub(crate) fn create_change(
    env: &Environment,
    request: &CreateGroupRequest,
    org: &str,
    created_by: &str,
) -> Result<FirewallChange, Error> {
    request.validate()?;
    let region = env.region_or_first(request.region.as_deref())?;
    let mut tags = request.tags.clone();
    tags.insert(tags::ORG.into(), org.into());
    tags.insert(tags::CREATED_BY.into(), created_by.into());
    Ok(FirewallChange::Create {
        region,
        name: request.name.clone(),
        description: request.description.clone(),
        vpc_id: request.vpc_id.clone(),
        tags,
    })
}

impl Core {
    /// Security groups the caller may see, of one region or all.
    pub async fn security_groups(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
    ) -> Result<Vec<SecurityGroup>, Error> {
        let (environment, region) = self.region_of(env, region)?;
        let found = environment
            .firewall()?
            .list_groups(region.as_deref(), &[])
            .await;
        Ok(visible_only(
            principal,
            environment,
            found.map_err(provider_error)?,
        ))
    }

    /// One security group with its rules, if the caller may see it.
    pub async fn security_group(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
    ) -> Result<SecurityGroup, Error> {
        match self.environments.require(env)?.find_group(id).await? {
            Some(group) if visible_org(principal, group.org.as_deref()) => Ok(group),
            _ => Err(Error::not_found("security_group", id)),
        }
    }

    pub async fn create_security_group(
        &self,
        principal: &Principal,
        env: &str,
        request: &CreateGroupRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        let environment = self.environments.require(env)?;
        environment.firewall()?;
        let change = create_change(environment, request, &principal.org, &principal.token_name)?;
        let target = format!("{env}/security-groups/{}", request.name);
        self.firewall_operation(
            principal,
            env,
            CREATE_KIND,
            &principal.org,
            target,
            change,
            idempotency,
        )
        .await
    }

    /// Deletes a group; 409 while an instance or another group's rule uses it.
    pub async fn delete_security_group(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        let group = self.security_group(principal, env, id).await?;
        let environment = self.environments.require(env)?;
        check_unused(environment, &group.region, id).await?;
        let change = FirewallChange::Delete {
            region: group.region.clone(),
            id: id.to_string(),
        };
        let org = group.org.clone().unwrap_or_else(|| principal.org.clone());
        self.firewall_operation(
            principal,
            env,
            DELETE_KIND,
            &org,
            format!("{env}/{id}"),
            change,
            idempotency,
        )
        .await
    }

    /// Adds (or with `remove`, removes) one rule of a group.
    pub async fn change_rule(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
        rule: Rule,
        remove: bool,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        rule.validate()?;
        let group = self.security_group(principal, env, id).await?;
        let region = group.region.clone();
        let (kind, change) = if remove {
            (
                REMOVE_RULE_KIND,
                FirewallChange::RemoveRule {
                    region,
                    id: id.into(),
                    rule,
                },
            )
        } else {
            (
                ADD_RULE_KIND,
                FirewallChange::AddRule {
                    region,
                    id: id.into(),
                    rule,
                },
            )
        };
        let org = group.org.clone().unwrap_or_else(|| principal.org.clone());
        self.firewall_operation(
            principal,
            env,
            kind,
            &org,
            format!("{env}/{id}"),
            change,
            idempotency,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn firewall_operation(
        &self,
        principal: &Principal,
        env: &str,
        kind: &str,
        org: &str,
        target: String,
        change: FirewallChange,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        let input = to_input(&FirewallInput {
            environment: env.to_string(),
            change,
        })?;
        let (operation, _) = self
            .start_operation(principal, kind, org, Some(env), target, input, idempotency)
            .await?;
        Ok(operation)
    }
}
