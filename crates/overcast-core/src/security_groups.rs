//! Security groups: list, get, create, delete (refused while in use, as AWS does, even where
//! an emulator would not), and rules. Every change is an operation whose steps are safe to
//! re-run after a crash.

use async_trait::async_trait;
use overcast_provider::InstanceFilter;
use overcast_types::{tags, Error, Operation, Page, Role, Rule, SecurityGroup, TargetResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::access::{check_referenced, made_by, owner_tags, visible_or_404};
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::environments::Environment;
use crate::errors::provider_error;
use crate::operations::attempts::find_or_create;
use crate::operations::{Change, InEnvironment, OperationContext};
use crate::tags::check_tags;

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

/// A rule to add to a group or remove from it.
#[derive(Debug, Clone)]
pub enum RuleChange {
    Add(Rule),
    Remove(Rule),
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

impl Environment {
    /// A group by id, from whichever region has it.
    pub async fn find_group(&self, id: &str) -> Result<Option<SecurityGroup>, Error> {
        let found = self
            .firewall()?
            .list_groups(None, &[id.to_string()])
            .await
            .map_err(provider_error)?;
        Ok(found.into_iter().next().map(|g| self.with_owner(g)))
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

/// `security_group.create`, `.delete`, `.add_rule` and `.remove_rule`. A create finds the
/// group an earlier run made by its operation tag; deletes and rule changes are no-ops
/// when already done.
pub(crate) struct SecurityGroupChanges;

#[async_trait]
impl Change for SecurityGroupChanges {
    const KINDS: &'static [&'static str] = &[
        "security_group.create",
        "security_group.delete",
        "security_group.add_rule",
        "security_group.remove_rule",
    ];
    type Input = InEnvironment<FirewallChange>;

    fn kind(input: &InEnvironment<FirewallChange>) -> &'static str {
        match input.change {
            FirewallChange::Create { .. } => "security_group.create",
            FirewallChange::Delete { .. } => "security_group.delete",
            FirewallChange::AddRule { .. } => "security_group.add_rule",
            FirewallChange::RemoveRule { .. } => "security_group.remove_rule",
        }
    }

    async fn run(
        &self,
        input: InEnvironment<FirewallChange>,
        step: &mut OperationContext,
    ) -> Result<(), Error> {
        let env = step.environment(&input.environment)?;
        let env = env.as_ref();
        let firewall = env.firewall()?;
        step.set_total(1).await?;
        let result = match input.change {
            FirewallChange::Create {
                region,
                name,
                description,
                vpc_id,
                mut tags,
            } => {
                // Every try finds the group an earlier one made by its operation tag.
                let operation_id = step.operation_id().to_string();
                tags.insert(tags::OPERATION.into(), operation_id.clone());
                let group = find_or_create(
                    "security group",
                    &step.cancellation(),
                    || async {
                        let groups = firewall.list_groups(Some(&region), &[]).await?;
                        Ok(groups.into_iter().find(made_by(&operation_id)))
                    },
                    || {
                        firewall.create_group(
                            &region,
                            &name,
                            &description,
                            vpc_id.as_deref(),
                            &tags,
                        )
                    },
                )
                .await?;
                let group = env.with_owner(group);
                env.inventory.security_groups.record([group.clone()]);
                TargetResult::done(&group.id).with_detail(&group)?
            }
            FirewallChange::Delete { region, id } => {
                check_unused(env, &region, &id).await?;
                match firewall.delete_group(&region, &id).await {
                    // A group already gone counts as deleted, so a re-run does no harm.
                    Err(e) if e.code == "security_group_not_found" => {}
                    other => other.map_err(provider_error)?,
                }
                env.inventory
                    .security_groups
                    .record_gone(std::slice::from_ref(&id));
                TargetResult::done(id)
            }
            FirewallChange::AddRule { region, id, rule } => {
                firewall
                    .add_rule(&region, &id, &rule)
                    .await
                    .map_err(provider_error)?;
                env.inventory
                    .security_groups
                    .update(std::slice::from_ref(&id), |group| {
                        if !group.rules.contains(&rule) {
                            group.rules.push(rule.clone());
                        }
                    });
                TargetResult::done(id)
            }
            FirewallChange::RemoveRule { region, id, rule } => {
                firewall
                    .remove_rule(&region, &id, &rule)
                    .await
                    .map_err(provider_error)?;
                env.inventory
                    .security_groups
                    .update(std::slice::from_ref(&id), |group| {
                        group.rules.retain(|r| *r != rule);
                    });
                TargetResult::done(id)
            }
        };
        step.record(result).await
    }
}

/// The firewall change a create request asks for, checked.
pub(crate) fn create_change(
    env: &Environment,
    request: &CreateGroupRequest,
    principal: &Principal,
) -> Result<FirewallChange, Error> {
    request.validate()?;
    let region = env.region_or_first(request.region.as_deref())?;
    Ok(FirewallChange::Create {
        region,
        name: request.name.clone(),
        description: request.description.clone(),
        vpc_id: request.vpc_id.clone(),
        tags: owner_tags(principal, &request.tags),
    })
}

impl Core {
    /// Security groups the caller may see, of one region or all, from the inventory (read
    /// afresh when `fresh`).
    pub async fn security_groups(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        fresh: bool,
    ) -> Result<Page<SecurityGroup>, Error> {
        self.listed_visible(principal, env, region, fresh, |_| true)
            .await
    }

    /// One security group with its rules, if the caller may see it.
    pub async fn security_group(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
    ) -> Result<SecurityGroup, Error> {
        let found = self.environments.require(env)?.find_group(id).await?;
        visible_or_404(principal, found, "security_group", id)
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
        let change = create_change(environment, request, principal)?;
        let target = Target::new(env, format!("{env}/security-groups/{}", request.name));
        self.start::<SecurityGroupChanges>(
            principal,
            target,
            &InEnvironment::new(env, change),
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
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let group = self.security_group(principal, env, id).await?;
        let environment = self.environments.require(env)?;
        check_unused(environment, &group.region, id).await?;
        let change = FirewallChange::Delete {
            region: group.region.clone(),
            id: id.to_string(),
        };
        let target = Target::new(env, format!("{env}/{id}")).owned_by(group.org.as_deref());
        self.start::<SecurityGroupChanges>(
            principal,
            target,
            &InEnvironment::new(env, change),
            idempotency,
        )
        .await
    }

    /// Adds or removes one rule of a group.
    pub async fn change_rule(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
        request: RuleChange,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let (RuleChange::Add(rule) | RuleChange::Remove(rule)) = &request;
        rule.validate()?;
        let group = self.security_group(principal, env, id).await?;
        if let Some(source) = &rule.source_group {
            let found = self.environments.require(env)?.find_group(source).await?;
            check_referenced(
                principal,
                found,
                "security_group",
                source,
                "source_group".into(),
            )?;
        }
        let region = group.region.clone();
        let id = id.to_string();
        let change = match request {
            RuleChange::Add(rule) => FirewallChange::AddRule { region, id, rule },
            RuleChange::Remove(rule) => FirewallChange::RemoveRule { region, id, rule },
        };
        let target = Target::new(env, format!("{env}/{}", group.id)).owned_by(group.org.as_deref());
        self.start::<SecurityGroupChanges>(
            principal,
            target,
            &InEnvironment::new(env, change),
            idempotency,
        )
        .await
    }
}
