//! Parameters of an environment's parameter store, kept under the caller's org: every name a
//! caller gives is below `/{org}`, so an org can never read or list another's. Puts and
//! deletes are operations; a put's value reaches the backend from memory, never from the
//! store.

use async_trait::async_trait;
use overcast_provider::ParameterSpec;
use overcast_types::{
    tags, validate_parameter_path, Error, Operation, Page, Parameter, ParameterType, Role,
    TargetResult,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::access::owner_tags;
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::errors::provider_error;
use crate::operations::{Change, InEnvironment, OperationContext};
use crate::tags::check_tags;

/// SSM's largest standard value, held for every provider.
const MAX_VALUE: usize = 4096;

/// Which parameters a listing wants.
#[derive(Debug, Clone, Default)]
pub struct ParameterQuery {
    pub region: Option<String>,
    /// Below the org's root; `/` for all of them.
    pub path: String,
    /// At any depth under the path, or only directly under it.
    pub recursive: bool,
    pub limit: u32,
    pub page_token: Option<String>,
}

/// A parameter to write.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutParameterRequest {
    pub value: String,
    #[serde(default, rename = "type")]
    pub kind: ParameterType,
    #[serde(default)]
    pub description: Option<String>,
    /// For a `SecureString`: the KMS key (default: the account's).
    #[serde(default)]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Replace an existing parameter, making a new version (default: refuse with 409).
    #[serde(default)]
    pub overwrite: bool,
    #[serde(default)]
    pub region: Option<String>,
}

/// What a parameter change records: never the value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum ParameterChange {
    Put {
        region: String,
        /// The full name, org root included.
        name: String,
        kind: ParameterType,
        description: Option<String>,
        kms_key_id: Option<String>,
        tags: BTreeMap<String, String>,
        overwrite: bool,
    },
    /// Deletes these full names, in batches of the backend's limit.
    Delete { region: String, names: Vec<String> },
}

/// The org's root: `/{org}`.
fn root(principal: &Principal) -> String {
    format!("/{}", principal.org)
}

/// The full name of a caller's name, checked.
pub(crate) fn full_name(principal: &Principal, field: &str, name: &str) -> Result<String, Error> {
    validate_parameter_path(field, name, false)?;
    Ok(format!("{}{name}", root(principal)))
}

/// A parameter as the caller sees it: its name without the org's root.
fn as_seen(principal: &Principal, mut parameter: Parameter) -> Parameter {
    if let Some(rest) = parameter.name.strip_prefix(&root(principal)) {
        parameter.name = rest.to_string();
    }
    parameter
}

/// `parameter.put` and `parameter.delete`. A put takes its value from its request in
/// memory; a run that finds none fails without writing. A delete walks its names in the
/// backend's batches, recording each, so a resumed run does only what is left.
pub(crate) struct ParameterChanges;

#[async_trait]
impl Change for ParameterChanges {
    const KINDS: &'static [&'static str] = &["parameter.put", "parameter.delete"];
    type Input = InEnvironment<ParameterChange>;

    fn kind(input: &InEnvironment<ParameterChange>) -> &'static str {
        match input.change {
            ParameterChange::Put { .. } => "parameter.put",
            ParameterChange::Delete { .. } => "parameter.delete",
        }
    }

    async fn run(
        &self,
        input: InEnvironment<ParameterChange>,
        step: &mut OperationContext,
    ) -> Result<(), Error> {
        let env = step.environment(&input.environment)?;
        let parameters = env.parameters()?;
        match input.change {
            ParameterChange::Put {
                region,
                name,
                kind,
                description,
                kms_key_id,
                mut tags,
                overwrite,
            } => {
                step.set_total(1).await?;
                tags.insert(tags::OPERATION.into(), step.operation_id().to_string());
                let spec = ParameterSpec {
                    region,
                    name: name.clone(),
                    value: step.take_given()?,
                    kind,
                    description,
                    kms_key_id,
                    tags,
                    overwrite,
                };
                let version = parameters
                    .put_parameter(&spec)
                    .await
                    .map_err(provider_error)?;
                step.record(TargetResult::done(&name).with_message(format!("version {version}")))
                    .await
            }
            ParameterChange::Delete { region, names } => {
                step.set_total(names.len() as u64).await?;
                let left: Vec<String> = names
                    .into_iter()
                    .filter(|n| step.result_for(n).is_none())
                    .collect();
                let (_, batch) = parameters.limits();
                for names in left.chunks(batch.max(1)) {
                    step.check_cancelled()?;
                    let missing = parameters
                        .delete_parameters(&region, names)
                        .await
                        .map_err(provider_error)?;
                    let results = names
                        .iter()
                        .map(|n| {
                            let result = TargetResult::done(n);
                            if missing.contains(n) {
                                result.with_message("already gone")
                            } else {
                                result
                            }
                        })
                        .collect();
                    step.record_many(results).await?;
                }
                Ok(())
            }
        }
    }
}

impl Core {
    /// One page of the caller's parameters under a path, without values.
    pub async fn parameters(
        &self,
        principal: &Principal,
        env: &str,
        query: ParameterQuery,
    ) -> Result<Page<Parameter>, Error> {
        validate_parameter_path("path", &query.path, true)?;
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(query.region.as_deref())?;
        let path = format!("{}{}", root(principal), query.path);
        let page = environment
            .parameters()?
            .list_parameters(
                &region,
                &path,
                query.recursive,
                query.limit,
                query.page_token.as_deref(),
            )
            .await
            .map_err(provider_error)?;
        let items = page
            .items
            .into_iter()
            .map(|p| as_seen(principal, p))
            .collect();
        Ok(Page::of(items, page.next_page_token))
    }

    /// One of the caller's parameters with its tags; its value too unless it is a
    /// `SecureString`, whose value only [`Core::parameter_value`] reads.
    pub async fn parameter(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
    ) -> Result<Parameter, Error> {
        self.read_parameter(principal, env, region, name, false)
            .await
    }

    /// A parameter with its value, a `SecureString` decrypted: operators only. (The front
    /// end puts every read in the audit log.)
    pub async fn parameter_value(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
    ) -> Result<Parameter, Error> {
        principal.require(Role::Operator)?;
        self.read_parameter(principal, env, region, name, true)
            .await
    }

    async fn read_parameter(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
        decrypt: bool,
    ) -> Result<Parameter, Error> {
        let full = full_name(principal, "name", name)?;
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(region)?;
        environment
            .parameters()?
            .parameter(&region, &full, decrypt)
            .await
            .map_err(provider_error)?
            .map(|p| as_seen(principal, p))
            .ok_or_else(|| Error::not_found("parameter", name))
    }

    /// The versions of one of the caller's parameters, oldest first, without values.
    pub async fn parameter_history(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
    ) -> Result<Vec<Parameter>, Error> {
        let full = full_name(principal, "name", name)?;
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(region)?;
        let parameters = environment.parameters()?;
        match parameters.parameter_history(&region, &full).await {
            Ok(versions) => Ok(versions
                .into_iter()
                .map(|p| as_seen(principal, p))
                .collect()),
            Err(e) if e.code == "parameter_not_found" => Err(Error::not_found("parameter", name)),
            Err(e) => Err(provider_error(e)),
        }
    }

    /// Writes a parameter, as an operation; the value goes to the operation in memory only.
    pub async fn put_parameter(
        &self,
        principal: &Principal,
        env: &str,
        name: &str,
        request: &PutParameterRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let full = full_name(principal, "name", name)?;
        check_tags(&request.tags)?;
        if request.value.is_empty() || request.value.len() > MAX_VALUE {
            return Err(Error::invalid("value", "must be 1 byte to 4 KiB"));
        }
        if request.kms_key_id.is_some() && request.kind != ParameterType::SecureString {
            return Err(Error::invalid(
                "kms_key_id",
                "is only for a parameter of type SecureString",
            ));
        }
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(request.region.as_deref())?;
        let tags = owner_tags(principal, &request.tags);
        let input = InEnvironment {
            environment: env.to_string(),
            change: ParameterChange::Put {
                region,
                name: full,
                kind: request.kind,
                description: request.description.clone(),
                kms_key_id: request.kms_key_id.clone(),
                tags,
                overwrite: request.overwrite,
            },
        };
        let target = Target::new(env, format!("{env}/parameters{name}"));
        self.start_giving::<ParameterChanges>(
            principal,
            target,
            &input,
            idempotency,
            request.value.clone(),
        )
        .await
    }

    /// Deletes one of the caller's parameters, as an operation.
    pub async fn delete_parameter(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        name: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let found = self.parameter(principal, env, region, name).await?;
        let full = format!("{}{}", root(principal), found.name);
        let region = self.environments.require(env)?.region_or_first(region)?;
        self.delete_names(principal, env, region, vec![full], name, idempotency)
            .await
    }

    /// Deletes every one of the caller's parameters under a path (at any depth), as one
    /// operation that deletes in the backend's batches, with progress.
    pub async fn delete_parameters_under(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        path: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        validate_parameter_path("path", path, true)?;
        if path == "/" {
            return Err(Error::invalid(
                "path",
                "name a path below the root; deleting every parameter is not offered",
            ));
        }
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(region)?;
        let parameters = environment.parameters()?;
        let full_path = format!("{}{path}", root(principal));
        let (page_size, _) = parameters.limits();
        let mut names = Vec::new();
        let mut page_token = None;
        loop {
            let page = parameters
                .list_parameters(&region, &full_path, true, page_size, page_token.as_deref())
                .await
                .map_err(provider_error)?;
            names.extend(page.items.into_iter().map(|p| p.name));
            page_token = page.next_page_token;
            if page_token.is_none() {
                break;
            }
        }
        self.delete_names(principal, env, region, names, path, idempotency)
            .await
    }

    async fn delete_names(
        &self,
        principal: &Principal,
        env: &str,
        region: String,
        names: Vec<String>,
        what: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        let input = InEnvironment {
            environment: env.to_string(),
            change: ParameterChange::Delete { region, names },
        };
        let target = Target::new(env, format!("{env}/parameters{what}"));
        self.start::<ParameterChanges>(principal, target, &input, idempotency)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(org: &str) -> Principal {
        Principal {
            token_id: "tok_1".into(),
            token_name: "ci".into(),
            org: org.into(),
            role: Role::Operator,
        }
    }

    #[test]
    fn names_live_under_the_org_root_and_show_without_it() {
        let acme = principal("acme");
        assert_eq!(full_name(&acme, "name", "/app/db").unwrap(), "/acme/app/db");
        assert!(full_name(&acme, "name", "app/db").is_err());
        assert!(full_name(&acme, "name", "/../other/db").is_err());
        let seen = as_seen(
            &acme,
            Parameter {
                name: "/acme/app/db".into(),
                ..Parameter::default()
            },
        );
        assert_eq!(seen.name, "/app/db");
    }
}
