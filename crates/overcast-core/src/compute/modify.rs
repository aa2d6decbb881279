//! Changing an instance's attributes (type, termination protection, user data, security
//! groups), with EC2's preconditions checked in overcast since an emulator may not.

use async_trait::async_trait;
use overcast_provider::InstanceChange;
use overcast_types::{Error, Instance, InstanceState, Operation, Role, TargetResult};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::create::encode_user_data;
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::errors::provider_error;
use crate::operations::{Change, OperationContext};

/// Attributes to change on an instance. Instance type and user data need the instance
/// stopped, as EC2 requires.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModifyInstanceRequest {
    #[serde(default)]
    pub instance_type: Option<String>,
    /// While on, terminate is refused.
    #[serde(default)]
    pub termination_protection: Option<bool>,
    /// A script or `#cloud-config` as text, or base64.
    #[serde(default)]
    pub user_data: Option<String>,
    /// Replaces the instance's security groups.
    #[serde(default)]
    pub security_groups: Option<Vec<String>>,
}

impl ModifyInstanceRequest {
    /// Checks the request against the instance's state and makes the change.
    pub fn change_for(&self, instance: &Instance) -> Result<InstanceChange, Error> {
        if self.instance_type.is_none()
            && self.termination_protection.is_none()
            && self.user_data.is_none()
            && self.security_groups.is_none()
        {
            return Err(Error::invalid("body", "give at least one of instance_type, termination_protection, user_data, security_groups"));
        }
        if instance.state.is_gone() {
            return Err(Error::conflict(
                "wrong_state",
                format!("instance {} is {}", instance.id, instance.state.as_str()),
            ));
        }
        for (field, given) in [
            ("instance_type", self.instance_type.is_some()),
            ("user_data", self.user_data.is_some()),
        ] {
            if given && instance.state != InstanceState::Stopped {
                return Err(Error::conflict(
                    "instance_not_stopped",
                    format!(
                        "instance {} is {}: stop it before changing {field}",
                        instance.id,
                        instance.state.as_str()
                    ),
                ));
            }
        }
        if let Some(t) = &self.instance_type {
            if t.trim().is_empty() {
                return Err(Error::invalid("instance_type", "must not be empty"));
            }
        }
        if let Some(groups) = &self.security_groups {
            if groups.is_empty() {
                return Err(Error::invalid(
                    "security_groups",
                    "an instance needs at least one security group",
                ));
            }
        }
        Ok(InstanceChange {
            instance_type: self.instance_type.clone(),
            termination_protection: self.termination_protection,
            user_data: self
                .user_data
                .as_deref()
                .map(encode_user_data)
                .transpose()?,
            security_groups: self.security_groups.clone(),
        })
    }
}

/// What an `instance.modify` operation records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ModifyInput {
    pub environment: String,
    pub region: String,
    pub id: String,
    pub change: InstanceChange,
}

/// `instance.modify`: setting an attribute to a value is idempotent.
pub(crate) struct ModifyInstance;

#[async_trait]
impl Change for ModifyInstance {
    const KINDS: &'static [&'static str] = &["instance.modify"];
    type Input = ModifyInput;

    async fn run(&self, input: ModifyInput, cx: &mut OperationContext) -> Result<(), Error> {
        let env = cx.environment(&input.environment)?;
        cx.set_total(1).await?;
        env.compute()?
            .modify_instance(&input.region, &input.id, &input.change)
            .await
            .map_err(provider_error)?;
        // What changed (a type, groups) is read back into the inventory.
        let ids = [input.id.clone()];
        let _changing = env.inventory.changing(&ids);
        env.read_instances(Some(&input.region), &ids).await?;
        cx.record(TargetResult::done(input.id)).await
    }
}

impl Core {
    /// Changes attributes of one instance, as an operation; EC2's preconditions are
    /// checked here, since an emulator may not check them.
    pub async fn modify_instance(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
        request: &ModifyInstanceRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let instance = self.instance(principal, env, id).await?;
        let change = request.change_for(&instance)?;
        let groups = request.security_groups.as_deref().unwrap_or_default();
        self.environments
            .require(env)?
            .check_references(principal, &instance.region, None, None, groups)
            .await?;
        let input = ModifyInput {
            environment: env.to_string(),
            region: instance.region.clone(),
            id: id.to_string(),
            change,
        };
        let target = Target::new(env, format!("{env}/{id}")).owned_by(instance.org.as_deref());
        self.start::<ModifyInstance>(principal, target, &input, idempotency)
            .await
    }
}
