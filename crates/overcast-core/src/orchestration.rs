//! One-call container services: a cluster, registry credentials secrets, a task definition
//! revision, a service discovery service and the service itself, each made when the request asks for it, in that order,
//! as one operation with a result per step. When a step fails, what the operation made is
//! undone, newest first, and its record says what was made, what was undone and what could
//! not be, so nothing is left behind silently. A server that dies in the middle resumes: the
//! steps it recorded are not repeated, a step it had not recorded finds what an earlier try
//! made by the operation's tag, and an operation that had begun undoing goes on undoing.

use async_trait::async_trait;
use overcast_provider::SecretSpec;
use overcast_types::SecretData;
use overcast_types::{
    Error, Operation, OperationError, Registry, Role, TargetOutcome, TargetResult, TaskDefinition,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::access::made_by;
use crate::access::owner_tags;
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::containers::{
    apply, cluster_change, delete_cluster_once_empty, delete_service, log_groups, ContainerChange,
    CreateClusterRequest, CreateRegistryRequest, CreateServiceRequest,
    RegisterTaskDefinitionRequest,
};
use crate::environments::Environment;
use crate::errors::provider_error;
use crate::operations::attempts::find_or_create;
use crate::operations::{Cancellation, Change, OperationContext};

/// A whole container service in one call.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContainerServiceRequest {
    /// Default: the environment's first region (the parts' own `region` is not used).
    #[serde(default)]
    pub region: Option<String>,
    /// The cluster: made unless the caller's org has one of this name, which is used as it is.
    pub cluster: CreateClusterRequest,
    /// A new revision for the service; without it, `service.task_definition` names one.
    #[serde(default)]
    pub task_definition: Option<RegisterTaskDefinitionRequest>,
    /// A service discovery service to make; the service's tasks register in it.
    #[serde(default)]
    pub registry: Option<CreateRegistryRequest>,
    /// Per container of the new task definition: the credentials of its image's private
    /// registry, kept in a secret made for it (`SERVICE-CONTAINER-registry`). The values
    /// reach the secret from memory; they are never stored in the operation.
    #[serde(default)]
    pub credentials: BTreeMap<String, RegistryCredentials>,
    pub service: CreateServiceRequest,
}

/// A private registry's user and password.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
    /// The secret's name (default: `SERVICE-CONTAINER-registry`).
    #[serde(default)]
    pub secret: Option<String>,
    /// The secret's own tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryCredentials({}, <password>)", self.username)
    }
}

/// A credentials secret the operation makes for one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CredentialSecret {
    container: String,
    name: String,
    tags: BTreeMap<String, String>,
}

/// What a `container_service.create` operation records: each step's change, as planned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StackInput {
    environment: String,
    region: String,
    cluster_name: String,
    /// `None`: the cluster exists and is used as it is.
    cluster: Option<ContainerChange>,
    /// The credentials secrets to make; their values are handed over in memory.
    #[serde(default)]
    credentials: Vec<CredentialSecret>,
    task_definition: Option<ContainerChange>,
    registry: Option<ContainerChange>,
    /// Its task definition and registries are completed from the steps before it.
    service: ContainerChange,
}

/// The steps, in order; each is recorded under its name, and its undoing under `undo:NAME`.
const STEPS: [&str; 5] = [
    "cluster",
    "credentials",
    "task_definition",
    "registry",
    "service",
];
/// Recorded when a step failed: the operation is undoing what it made from then on.
const ROLLBACK: &str = "rollback";

impl StackInput {
    fn planned(&self, step: &str) -> bool {
        match step {
            "credentials" => !self.credentials.is_empty(),
            _ => self.change(step).is_some(),
        }
    }

    fn change(&self, step: &str) -> Option<&ContainerChange> {
        match step {
            "cluster" => self.cluster.as_ref(),
            "credentials" => None,
            "task_definition" => self.task_definition.as_ref(),
            "registry" => self.registry.as_ref(),
            _ => Some(&self.service),
        }
    }
}

/// `container_service.create`.
pub(crate) struct CreateStack;

#[async_trait]
impl Change for CreateStack {
    const KINDS: &'static [&'static str] = &["container_service.create"];
    type Input = StackInput;

    async fn run(&self, input: StackInput, step: &mut OperationContext) -> Result<(), Error> {
        let env = step.environment(&input.environment)?;
        let planned = STEPS.iter().filter(|s| input.planned(s)).count();
        step.set_total(planned as u64).await?;
        if let Some(marker) = step.result_for(ROLLBACK).cloned() {
            return undo(env.as_ref(), &input, step, failure_of(&marker)).await;
        }
        match make(env.as_ref(), &input, step).await {
            Ok(()) => Ok(()),
            Err(error) => {
                let marker = TargetResult {
                    target: ROLLBACK.into(),
                    outcome: TargetOutcome::Failed,
                    message: Some(format!(
                        "undoing what this operation made: {}",
                        error.message
                    )),
                    detail: serde_json::to_value(OperationError::from(&error)).ok(),
                };
                step.record(marker).await?;
                undo(env.as_ref(), &input, step, error).await
            }
        }
    }
}

/// The error a rollback marker recorded.
fn failure_of(marker: &TargetResult) -> Error {
    let recorded: Option<OperationError> = marker
        .detail
        .clone()
        .and_then(|d| serde_json::from_value(d).ok());
    match recorded {
        Some(e) => Error::from(&e),
        None => Error::internal(marker.message.clone().unwrap_or_default()),
    }
}

/// Takes the steps not recorded yet, in order, each completing the service's change.
async fn make(
    env: &Environment,
    input: &StackInput,
    step: &mut OperationContext,
) -> Result<(), Error> {
    let operation_id = step.operation_id().to_string();
    let cancellation = step.cancellation();
    for name in STEPS {
        if step.result_for(name).is_some() || !input.planned(name) {
            continue;
        }
        if name == "credentials" {
            let made = make_credentials(env, input, step).await?;
            step.record(made).await?;
            continue;
        }
        let Some(change) = input.change(name) else {
            continue;
        };
        let mut change = change.clone();
        if let ContainerChange::RegisterTaskDefinition { containers, .. } = &mut change {
            let arns: BTreeMap<String, String> =
                made_detail(step, "credentials").unwrap_or_default();
            for container in containers.iter_mut() {
                if let Some(arn) = arns.get(&container.name) {
                    container.repository_credentials = Some(arn.clone());
                }
            }
        }
        if let ContainerChange::CreateService {
            task_definition,
            registries,
            ..
        } = &mut change
        {
            if let Some(made) = made_detail::<TaskDefinition>(step, "task_definition") {
                *task_definition = made.name();
            }
            if let Some(arn) = made_detail::<Registry>(step, "registry").and_then(|r| r.arn) {
                registries.push(arn);
            }
        }
        let made = apply(env, change, &operation_id, &cancellation).await?;
        let Some(made) = made.into_iter().next() else {
            return Err(Error::internal(format!("the {name} step made nothing")));
        };
        step.record(TargetResult {
            target: name.into(),
            outcome: TargetOutcome::Done,
            message: Some(format!("made {}", made.target)),
            detail: made.detail,
        })
        .await?;
    }
    Ok(())
}

/// Makes each container's credentials secret from the values handed over in memory, each
/// found first if an earlier try made it; answers the containers' secret ARNs.
async fn make_credentials(
    env: &Environment,
    input: &StackInput,
    step: &OperationContext,
) -> Result<TargetResult, Error> {
    let secrets = env.secrets()?;
    let given: BTreeMap<String, RegistryCredentials> =
        serde_json::from_str(&step.take_given()?).map_err(|e| Error::internal(e.to_string()))?;
    let operation_id = step.operation_id().to_string();
    let cancellation = step.cancellation();
    let mut arns = BTreeMap::new();
    for (i, wanted) in input.credentials.iter().enumerate() {
        let value = given.get(&wanted.container).ok_or_else(|| {
            Error::internal(format!(
                "no credentials were handed over for {}",
                wanted.container
            ))
        })?;
        let value = serde_json::json!({"username": value.username, "password": value.password});
        let mut tags = wanted.tags.clone();
        tags.insert(overcast_types::tags::OPERATION.into(), operation_id.clone());
        let spec = SecretSpec {
            region: input.region.clone(),
            name: wanted.name.clone(),
            value: SecretData::Text(value.to_string()),
            description: Some(format!(
                "registry credentials of container {} (made by overcast)",
                wanted.container
            )),
            kms_key_id: None,
            tags,
            client_token: format!("{operation_id}-credentials-{i:03}"),
        };
        let secret = find_or_create(
            "credentials secret",
            &cancellation,
            || async {
                let found = secrets.secret(&input.region, &wanted.name).await?;
                Ok(found.filter(made_by(&operation_id)))
            },
            || secrets.create_secret(&spec),
        )
        .await?;
        let arn = secret.arn.ok_or_else(|| {
            Error::internal(format!("secret {} has no ARN to give ECS", wanted.name))
        })?;
        arns.insert(wanted.container.clone(), arn);
    }
    let names: Vec<&str> = input.credentials.iter().map(|c| c.name.as_str()).collect();
    TargetResult {
        target: "credentials".into(),
        outcome: TargetOutcome::Done,
        message: Some(format!("made secret(s) {}", names.join(", "))),
        detail: None,
    }
    .with_detail(&arns)
}

/// What a recorded step made, as its resource type.
fn made_detail<T: serde::de::DeserializeOwned>(step: &OperationContext, name: &str) -> Option<T> {
    step.result_for(name)
        .filter(|r| r.outcome == TargetOutcome::Done)
        .and_then(|r| r.detail.clone())
        .and_then(|d| serde_json::from_value(d).ok())
}

/// Undoes the steps made, newest first, recording each; one that cannot be undone is
/// recorded as such and the rest are still undone. Ends with the error that began it.
async fn undo(
    env: &Environment,
    input: &StackInput,
    step: &mut OperationContext,
    error: Error,
) -> Result<(), Error> {
    let cancellation = step.cancellation();
    for name in STEPS.iter().rev() {
        let undo_target = format!("undo:{name}");
        let made = step
            .result_for(name)
            .is_some_and(|r| r.outcome == TargetOutcome::Done);
        if !made || step.result_for(&undo_target).is_some() {
            continue;
        }
        let undone = undo_step(env, input, step, name, &cancellation).await;
        let result = match undone {
            Ok(what) => TargetResult {
                target: undo_target,
                outcome: TargetOutcome::Done,
                message: Some(format!("undone: {what}")),
                detail: None,
            },
            Err(e) => TargetResult {
                target: undo_target,
                outcome: TargetOutcome::Failed,
                message: Some(format!("could not be undone, left in place: {}", e.message)),
                detail: None,
            },
        };
        step.record(result).await?;
    }
    Err(error)
}

/// Undoes one step; answers what it took away.
async fn undo_step(
    env: &Environment,
    input: &StackInput,
    step: &OperationContext,
    name: &str,
    cancellation: &Cancellation,
) -> Result<String, Error> {
    let region = &input.region;
    let containers = env.containers()?;
    match name {
        "credentials" => {
            let secrets = env.secrets()?;
            for wanted in &input.credentials {
                match secrets.delete_secret(region, &wanted.name, 0).await {
                    Err(e) if e.kind == overcast_provider::ProviderErrorKind::NotFound => {}
                    other => {
                        other.map_err(provider_error)?;
                    }
                }
            }
            let names: Vec<&str> = input.credentials.iter().map(|c| c.name.as_str()).collect();
            Ok(format!("secret(s) {}", names.join(", ")))
        }
        "service" => {
            let ContainerChange::CreateService { cluster, name, .. } = &input.service else {
                return Err(Error::internal("the service step is not a service"));
            };
            delete_service(containers, region, cluster, name, cancellation).await?;
            Ok(format!("service {name}"))
        }
        "registry" => {
            let registry = made_detail::<Registry>(step, "registry")
                .ok_or_else(|| Error::internal("the registry step recorded no registry"))?;
            env.service_discovery()?
                .delete_registry(region, &registry.id)
                .await
                .map_err(provider_error)?;
            Ok(format!("registry {}", registry.id))
        }
        "task_definition" => {
            let definition = made_detail::<TaskDefinition>(step, "task_definition")
                .ok_or_else(|| Error::internal("the task definition step recorded none"))?;
            containers
                .deregister_task_definition(region, &definition.name())
                .await
                .map_err(provider_error)?;
            // The log groups this operation made for it go too; ones that were there stay.
            let mut undone = vec![format!("task definition {}", definition.name())];
            for group in log_groups(&definition.containers) {
                let support = env.container_support()?;
                let tags = support
                    .log_group_tags(region, &group)
                    .await
                    .map_err(provider_error)?;
                let made_here = tags.is_some_and(|t| {
                    t.get(overcast_types::tags::OPERATION).map(String::as_str)
                        == Some(step.operation_id())
                });
                if made_here {
                    support
                        .delete_log_group(region, &group)
                        .await
                        .map_err(provider_error)?;
                    undone.push(format!("log group {group}"));
                }
            }
            Ok(undone.join(", "))
        }
        _ => {
            delete_cluster_once_empty(containers, region, &input.cluster_name, cancellation)
                .await?;
            Ok(format!("cluster {}", input.cluster_name))
        }
    }
}

/// Names a part's fields within the request: `name` of the service is `service.name`.
fn within<T>(part: &str, result: Result<T, Error>) -> Result<T, Error> {
    result.map_err(|mut e| {
        e.field = Some(match e.field {
            Some(field) => format!("{part}.{field}"),
            None => part.to_string(),
        });
        e
    })
}

impl Core {
    /// Plans a whole container service and starts the operation that makes it: a 400 or 404
    /// naming the part at fault before anything is made.
    pub async fn create_container_stack(
        &self,
        principal: &Principal,
        env: &str,
        request: &CreateContainerServiceRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let environment = self.environments.require(env)?;
        let region = environment.region_or_first(request.region.as_deref())?;
        let containers = environment.containers()?;

        let existing = containers
            .cluster(&region, &request.cluster.name)
            .await
            .map_err(provider_error)?;
        let cluster = match existing {
            // An existing cluster must be the caller's to be used.
            Some(_) => {
                within(
                    "cluster",
                    self.cluster(principal, env, Some(&region), &request.cluster.name)
                        .await,
                )?;
                None
            }
            None => Some(within(
                "cluster",
                cluster_change(principal, &request.cluster, region.clone()),
            )?),
        };

        let task_definition = match &request.task_definition {
            Some(part) => Some(within(
                "task_definition",
                self.task_definition_change(principal, env, region.clone(), part)
                    .await,
            )?),
            None => None,
        };
        let named_revision = match (&task_definition, request.service.task_definition.as_str()) {
            (Some(_), _) => String::new(),
            (None, "") => {
                return Err(Error::invalid(
                    "service.task_definition",
                    "give a task_definition part, or name an existing revision here",
                ))
            }
            (None, name) => within(
                "service.task_definition",
                self.task_definition(principal, env, Some(&region), name)
                    .await,
            )?
            .name(),
        };

        let credentials = self.credentials_plan(principal, request)?;

        let registry = match &request.registry {
            Some(part) => Some(within(
                "registry",
                self.registry_change(principal, env, &region, part).await,
            )?),
            None => None,
        };

        let service = &request.service;
        within(
            "service",
            overcast_types::validate_container_name("name", &service.name),
        )?;
        within("service", crate::tags::check_tags(&service.tags))?;
        if cluster.is_none()
            && containers
                .service(&region, &request.cluster.name, &service.name)
                .await
                .map_err(provider_error)?
                .is_some()
        {
            return Err(Error {
                field: Some("service.name".into()),
                ..Error::conflict(
                    "service_exists",
                    format!(
                        "cluster {} has a service named `{}`",
                        request.cluster.name, service.name
                    ),
                )
            });
        }
        let service_change = ContainerChange::CreateService {
            region: region.clone(),
            cluster: request.cluster.name.clone(),
            name: service.name.clone(),
            task_definition: named_revision,
            desired_count: service.desired_count,
            placement: self.placement(
                env,
                &service.subnets,
                &service.security_groups,
                service.public_ip,
            )?,
            capacity_strategy: service.capacity_strategy.clone(),
            registries: service.registries.clone(),
            tags: owner_tags(principal, &service.tags),
        };
        let input = StackInput {
            environment: env.to_string(),
            region,
            cluster_name: request.cluster.name.clone(),
            cluster,
            credentials,
            task_definition,
            registry,
            service: service_change,
        };
        let target = Target::new(env, format!("{env}/container-services/{}", service.name));
        if request.credentials.is_empty() {
            return self
                .start::<CreateStack>(principal, target, &input, idempotency)
                .await;
        }
        let given = serde_json::to_string(&request.credentials)
            .map_err(|e| Error::internal(e.to_string()))?;
        self.start_giving::<CreateStack>(principal, target, &input, idempotency, given)
            .await
    }

    /// The credentials secrets a request asks for, one per container of its new task
    /// definition, checked.
    fn credentials_plan(
        &self,
        principal: &Principal,
        request: &CreateContainerServiceRequest,
    ) -> Result<Vec<CredentialSecret>, Error> {
        if request.credentials.is_empty() {
            return Ok(Vec::new());
        }
        let Some(definition) = &request.task_definition else {
            return Err(Error::invalid(
                "credentials",
                "credentials are for the containers of a new task_definition",
            ));
        };
        let mut planned = Vec::new();
        for (container, given) in &request.credentials {
            let field = format!("credentials.{container}");
            if !definition.containers.iter().any(|c| &c.name == container) {
                return Err(Error::invalid(
                    field,
                    format!("the task definition has no container `{container}`"),
                ));
            }
            if given.username.is_empty() || given.password.is_empty() {
                return Err(Error::invalid(field, "give a username and a password"));
            }
            let name = given
                .secret
                .clone()
                .unwrap_or_else(|| format!("{}-{container}-registry", request.service.name));
            overcast_types::validate_secret_name(&format!("{field}.secret"), &name)?;
            crate::tags::check_tags(&given.tags)?;
            planned.push(CredentialSecret {
                container: container.clone(),
                name,
                tags: owner_tags(principal, &given.tags),
            });
        }
        Ok(planned)
    }
}
