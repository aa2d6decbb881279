//! Machine images: made from instances, listed, deleted with their snapshots. Names are
//! unique per region, as AWS requires, even where an emulator would not check.

use crate::auth::Principal;
use crate::{to_input, visible_only, visible_org, Core, Idempotency};
use async_trait::async_trait;
use overcast_provider::{ImageSpec, Images};
use overcast_types::Operation;
use overcast_types::Role;
use overcast_types::{tags, Error, ErrorKind, Image, TargetOutcome, TargetResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

use crate::environments::{Environment, Environments};
use crate::instances::check_tags;
use crate::operations::{Executor, Step};
use crate::provider_error;

pub const CREATE_KIND: &str = "image.create";
pub const DELETE_KIND: &str = "image.delete";

/// How long a new image may take to become available.
const AVAILABLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A request to make an image of an instance.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateImageRequest {
    pub instance_id: String,
    /// 3 to 128 characters: letters, digits, spaces and ( ) [ ] . / - ' @ _
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Do not reboot the instance first (faster; the image may be inconsistent).
    #[serde(default)]
    pub no_reboot: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl CreateImageRequest {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || " ()[]./-'@_".contains(c);
        if !(3..=128).contains(&self.name.len()) || !self.name.chars().all(allowed) {
            return Err(Error::invalid(
                "name",
                "use 3 to 128 characters: letters, digits, spaces and ( ) [ ] . / - ' @ _",
            ));
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 255) {
            return Err(Error::invalid("description", "use at most 255 characters"));
        }
        check_tags(&self.tags)
    }
}

/// What an image operation records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum ImageChange {
    Create {
        spec: ImageSpec,
    },
    /// The snapshots are read when the operation is planned, so a re-run after the
    /// image is gone still deletes them.
    Delete {
        region: String,
        id: String,
        snapshots: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageInput {
    pub environment: String,
    pub change: ImageChange,
}

impl Environment {
    pub async fn find_image(&self, id: &str) -> Result<Option<Image>, Error> {
        let found = self
            .images()?
            .list_images(None, &[id.to_string()])
            .await
            .map_err(provider_error)?;
        Ok(found.into_iter().next().map(|i| self.own(i)))
    }
}

/// Refuses a name an own image in the region already has.
pub(crate) async fn check_name_free(
    images: &dyn Images,
    region: &str,
    name: &str,
) -> Result<(), Error> {
    let taken = images
        .list_images(Some(region), &[])
        .await
        .map_err(provider_error)?
        .into_iter()
        .any(|i| i.name == name);
    if taken {
        return Err(Error {
            field: Some("name".into()),
            ..Error::conflict(
                "image_name_taken",
                format!("an image named `{name}` exists in {region}"),
            )
        });
    }
    Ok(())
}

pub(crate) struct ImageExecutor {
    pub environments: Arc<Environments>,
}

#[async_trait]
impl Executor for ImageExecutor {
    async fn run(&self, step: &mut Step) -> Result<(), Error> {
        let input: ImageInput = step.input()?;
        let env = self.environments.require(&input.environment)?;
        let images = env.images()?;
        step.set_total(1).await?;
        match input.change {
            ImageChange::Create { mut spec } => {
                let operation_id = step.operation().id.clone();
                spec.tags
                    .insert(tags::OPERATION.into(), operation_id.clone());
                // A re-run finds the image an earlier run made by its operation tag.
                let mine = |i: &Image| i.tags.get(tags::OPERATION) == Some(&operation_id);
                let existing = images
                    .list_images(Some(&spec.region), &[])
                    .await
                    .map_err(provider_error)?
                    .into_iter()
                    .find(mine);
                let mut image = match existing {
                    Some(image) => image,
                    None => images.create_image(&spec).await.map_err(provider_error)?,
                };
                let deadline = Instant::now() + AVAILABLE_TIMEOUT;
                let mut delay = Duration::from_millis(500);
                while image.state != "available" {
                    if image.state == "failed" || Instant::now() >= deadline {
                        return Err(Error::new(
                            ErrorKind::BackendRefused,
                            "image_not_available",
                            format!("image {} is {} and not available", image.id, image.state),
                        ));
                    }
                    step.check_cancelled()?;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(15));
                    let found = images
                        .list_images(Some(&spec.region), &[image.id.clone()])
                        .await;
                    image = found.map_err(provider_error)?.pop().unwrap_or(image);
                }
                let image = env.own(image);
                step.record(TargetResult {
                    target: image.id.clone(),
                    outcome: TargetOutcome::Done,
                    message: None,
                    detail: Some(
                        serde_json::to_value(&image).map_err(|e| Error::internal(e.to_string()))?,
                    ),
                })
                .await
            }
            ImageChange::Delete {
                region,
                id,
                snapshots,
            } => {
                images
                    .deregister_image(&region, &id)
                    .await
                    .map_err(provider_error)?;
                for snapshot in &snapshots {
                    images
                        .delete_snapshot(&region, snapshot)
                        .await
                        .map_err(provider_error)?;
                }
                step.record(TargetResult {
                    target: id,
                    outcome: TargetOutcome::Done,
                    message: Some(format!(
                        "deregistered; {} snapshot(s) deleted",
                        snapshots.len()
                    )),
                    detail: None,
                })
                .await
            }
        }
    }
}

impl Core {
    /// Own images the caller may see, of one region or all.
    pub async fn images(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
    ) -> Result<Vec<Image>, Error> {
        let (environment, region) = self.region_of(env, region)?;
        let found = environment
            .images()?
            .list_images(region.as_deref(), &[])
            .await;
        Ok(visible_only(
            principal,
            environment,
            found.map_err(provider_error)?,
        ))
    }

    pub async fn image(&self, principal: &Principal, env: &str, id: &str) -> Result<Image, Error> {
        match self.environments.require(env)?.find_image(id).await? {
            Some(image) if visible_org(principal, image.org.as_deref()) => Ok(image),
            _ => Err(Error::not_found("image", id)),
        }
    }

    /// Makes an image of an instance the caller may see, as an operation.
    pub async fn create_image(
        &self,
        principal: &Principal,
        env: &str,
        request: &CreateImageRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        request.validate()?;
        let instance = self
            .instance(principal, env, &request.instance_id)
            .await
            .map_err(|e| Error {
                field: Some("instance_id".into()),
                ..e
            })?;
        let environment = self.environments.require(env)?;
        check_name_free(environment.images()?, &instance.region, &request.name).await?;
        let mut image_tags = request.tags.clone();
        image_tags.insert(overcast_types::tags::ORG.into(), principal.org.clone());
        image_tags.insert(
            overcast_types::tags::CREATED_BY.into(),
            principal.token_name.clone(),
        );
        let change = ImageChange::Create {
            spec: overcast_provider::ImageSpec {
                region: instance.region.clone(),
                instance_id: instance.id.clone(),
                name: request.name.clone(),
                description: request.description.clone(),
                no_reboot: request.no_reboot,
                tags: image_tags,
            },
        };
        let input = to_input(&ImageInput {
            environment: env.to_string(),
            change,
        })?;
        let target = format!("{env}/images/{}", request.name);
        let (operation, _) = self
            .start_operation(
                principal,
                CREATE_KIND,
                &principal.org,
                Some(env),
                target,
                input,
                idempotency,
            )
            .await?;
        Ok(operation)
    }

    /// Deregisters an image and deletes its snapshots, as an operation.
    pub async fn delete_image(
        &self,
        principal: &Principal,
        env: &str,
        id: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        let image = self.image(principal, env, id).await?;
        let change = ImageChange::Delete {
            region: image.region.clone(),
            id: id.to_string(),
            snapshots: image.snapshots.clone(),
        };
        let input = to_input(&ImageInput {
            environment: env.to_string(),
            change,
        })?;
        let org = image.org.clone().unwrap_or_else(|| principal.org.clone());
        let (operation, _) = self
            .start_operation(
                principal,
                DELETE_KIND,
                &org,
                Some(env),
                format!("{env}/{id}"),
                input,
                idempotency,
            )
            .await?;
        Ok(operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_follow_the_aws_rule() {
        let request = |name: &str| CreateImageRequest {
            instance_id: "i-1".into(),
            name: name.into(),
            description: None,
            no_reboot: false,
            tags: BTreeMap::new(),
        };
        assert!(request("web (2026-11-22) v1.2").validate().is_ok());
        for bad in ["ab", "web#1", &"x".repeat(129)] {
            assert_eq!(
                request(bad).validate().unwrap_err().field.as_deref(),
                Some("name"),
                "{bad}"
            );
        }
    }
}
