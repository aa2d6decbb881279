//! Machine images: made from instances or imported from URLs (where the provider can),
//! listed, deleted with their snapshots. Names are unique per region, as AWS requires,
//! even where an emulator would not check.

use async_trait::async_trait;
use overcast_provider::{ImageSpec, Images, ImportSource, ImportSpec};
use overcast_types::{tags, Error, ErrorKind, Image, Operation, Page, Role, TargetResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

use crate::access::{made_by, owner_tags, visible_or_404};
use crate::app::{Core, Idempotency, Target};
use crate::auth::Principal;
use crate::environments::Environment;
use crate::errors::provider_error;
use crate::operations::attempts::find_or_create;
use crate::operations::{Change, InEnvironment, OperationContext};
use crate::tags::check_tags;

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
        validate_image_name(&self.name)?;
        if self.description.as_ref().is_some_and(|d| d.len() > 255) {
            return Err(Error::invalid("description", "use at most 255 characters"));
        }
        check_tags(&self.tags)
    }
}

/// An image name as AWS allows it, for every provider alike.
fn validate_image_name(name: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || " ()[]./-'@_".contains(c);
    if !(3..=128).contains(&name.len()) || !name.chars().all(allowed) {
        return Err(Error::invalid(
            "name",
            "use 3 to 128 characters: letters, digits, spaces and ( ) [ ] . / - ' @ _",
        ));
    }
    Ok(())
}

/// A request to bring in an image: a disk from `url`, or a kernel and initrd for direct
/// boot. URLs are `http(s)://`, or `file://` for files on the server's host (admins only).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportImageRequest {
    /// 3 to 128 characters: letters, digits, spaces and ( ) [ ] . / - ' @ _
    pub name: String,
    /// A qcow2 or raw disk image.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub kernel_url: Option<String>,
    #[serde(default)]
    pub initrd_url: Option<String>,
    /// The kernel command line; default `console=ttyS0`.
    #[serde(default)]
    pub cmdline: Option<String>,
    /// The SHA-256 the disk (or kernel) must have.
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl ImportImageRequest {
    /// The source, checked: exactly one of a disk or a kernel and initrd; URLs the server
    /// may fetch (`file://` only for admins).
    fn source(&self, principal: &Principal) -> Result<ImportSource, Error> {
        let check = |field: &str, url: &str| {
            if url.starts_with("http://") || url.starts_with("https://") {
                return Ok(());
            }
            if let Some(path) = url.strip_prefix("file://") {
                if !path.starts_with('/') {
                    return Err(Error::invalid(
                        field,
                        "a file:// URL needs an absolute path",
                    ));
                }
                if principal.role != Role::Admin {
                    return Err(Error::new(
                        ErrorKind::Forbidden,
                        "forbidden",
                        "file:// sources read the server's own files: only admins may use them",
                    ));
                }
                return Ok(());
            }
            Err(Error::invalid(
                field,
                format!("`{url}` is not an http://, https:// or file:// URL"),
            ))
        };
        match (&self.url, &self.kernel_url, &self.initrd_url) {
            (Some(url), None, None) => {
                check("url", url)?;
                if self.cmdline.is_some() {
                    return Err(Error::invalid("cmdline", "is for kernel images only"));
                }
                Ok(ImportSource::Disk { url: url.clone() })
            }
            (None, Some(kernel), Some(initrd)) => {
                check("kernel_url", kernel)?;
                check("initrd_url", initrd)?;
                Ok(ImportSource::Kernel {
                    kernel_url: kernel.clone(),
                    initrd_url: initrd.clone(),
                    cmdline: self.cmdline.clone(),
                })
            }
            _ => Err(Error::invalid(
                "url",
                "give a disk's url, or a kernel_url and an initrd_url",
            )),
        }
    }
}

/// What an image operation records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum ImageChange {
    Create {
        spec: ImageSpec,
    },
    Import {
        spec: ImportSpec,
    },
    /// The snapshots are read when the operation is planned, so a re-run after the
    /// image is gone still deletes them.
    Delete {
        region: String,
        id: String,
        snapshots: Vec<String>,
    },
}

impl Environment {
    pub async fn find_image(&self, id: &str) -> Result<Option<Image>, Error> {
        let found = self
            .images()?
            .list_images(None, &[id.to_string()])
            .await
            .map_err(provider_error)?;
        Ok(found.into_iter().next().map(|i| self.with_owner(i)))
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

/// `image.create`, `.import` and `.delete`. A create or import finds the image an earlier
/// run made by its operation tag; a delete repeats harmlessly.
pub(crate) struct ImageChanges;

#[async_trait]
impl Change for ImageChanges {
    const KINDS: &'static [&'static str] = &["image.create", "image.import", "image.delete"];
    type Input = InEnvironment<ImageChange>;

    fn kind(input: &InEnvironment<ImageChange>) -> &'static str {
        match input.change {
            ImageChange::Create { .. } => "image.create",
            ImageChange::Import { .. } => "image.import",
            ImageChange::Delete { .. } => "image.delete",
        }
    }

    async fn run(
        &self,
        input: InEnvironment<ImageChange>,
        step: &mut OperationContext,
    ) -> Result<(), Error> {
        let env = step.environment(&input.environment)?;
        let images = env.images()?;
        step.set_total(1).await?;
        let operation_id = step.operation_id().to_string();
        match input.change {
            ImageChange::Create { mut spec } => {
                spec.tags
                    .insert(tags::OPERATION.into(), operation_id.clone());
                // Every try finds the image an earlier one made by its operation tag.
                let mut image = find_or_create(
                    "image",
                    &step.cancellation(),
                    || async {
                        let mine = images.list_images(Some(&spec.region), &[]).await?;
                        Ok(mine.into_iter().find(made_by(&operation_id)))
                    },
                    || images.create_image(&spec),
                )
                .await?;
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
                let image = env.with_owner(image);
                env.inventory.images.record([image.clone()]);
                step.record(TargetResult::done(&image.id).with_detail(&image)?)
                    .await
            }
            ImageChange::Import { mut spec } => {
                spec.tags
                    .insert(tags::OPERATION.into(), operation_id.clone());
                // A re-run finds the image an earlier run finished by its operation tag.
                let existing = images
                    .list_images(None, &[])
                    .await
                    .map_err(provider_error)?
                    .into_iter()
                    .find(made_by(&operation_id));
                let image = match existing {
                    Some(image) => image,
                    None => import_with_progress(images, &spec, step).await?,
                };
                let image = env.with_owner(image);
                env.inventory.images.record([image.clone()]);
                // Progress counted bytes while fetching; the operation's one target is done.
                step.set_progress(0, 1).await?;
                step.record(TargetResult::done(&image.id).with_detail(&image)?)
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
                env.inventory.images.record_gone(std::slice::from_ref(&id));
                let message = format!("deregistered; {} snapshot(s) deleted", snapshots.len());
                step.record(TargetResult::done(id).with_message(message))
                    .await
            }
        }
    }
}

/// Imports an image, saving the bytes fetched so far to the operation twice a second.
async fn import_with_progress(
    images: &dyn Images,
    spec: &ImportSpec,
    step: &mut OperationContext,
) -> Result<Image, Error> {
    let fetched = Arc::new(std::sync::Mutex::new((0u64, None::<u64>)));
    let seen = fetched.clone();
    let report = move |done: u64, total: Option<u64>| {
        *seen.lock().unwrap_or_else(|p| p.into_inner()) = (done, total);
    };
    let import = images.import_image(spec, &report);
    tokio::pin!(import);
    let mut ticks = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            result = &mut import => return result.map_err(provider_error),
            _ = ticks.tick() => {
                let (done, total) = *fetched.lock().unwrap_or_else(|p| p.into_inner());
                step.set_progress(done, total.unwrap_or(done).max(done)).await?;
                step.check_cancelled()?;
            }
        }
    }
}

impl Core {
    /// Own images the caller may see, of one region or all, from the inventory (read
    /// afresh when `fresh`).
    pub async fn images(
        &self,
        principal: &Principal,
        env: &str,
        region: Option<&str>,
        fresh: bool,
    ) -> Result<Page<Image>, Error> {
        self.listed_visible(principal, env, region, fresh, |_| true)
            .await
    }

    pub async fn image(&self, principal: &Principal, env: &str, id: &str) -> Result<Image, Error> {
        let found = self.environments.require(env)?.find_image(id).await?;
        visible_or_404(principal, found, "image", id)
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
        let change = ImageChange::Create {
            spec: ImageSpec {
                region: instance.region.clone(),
                instance_id: instance.id.clone(),
                name: request.name.clone(),
                description: request.description.clone(),
                no_reboot: request.no_reboot,
                tags: owner_tags(principal, &request.tags),
            },
        };
        let target = Target::new(env, format!("{env}/images/{}", request.name));
        self.start::<ImageChanges>(
            principal,
            target,
            &InEnvironment::new(env, change),
            idempotency,
        )
        .await
    }

    /// Brings in an image from a URL, as an operation with progress in bytes.
    pub async fn import_image(
        &self,
        principal: &Principal,
        env: &str,
        request: &ImportImageRequest,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        principal.require(Role::Operator)?;
        validate_image_name(&request.name)?;
        check_tags(&request.tags)?;
        let source = request.source(principal)?;
        if let Some(sha256) = &request.sha256 {
            if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::invalid("sha256", "is not 64 hex digits"));
            }
        }
        let environment = self.environments.require(env)?;
        let images = environment.images()?;
        let region = environment.region_or_first(None)?;
        check_name_free(images, &region, &request.name).await?;
        let change = ImageChange::Import {
            spec: ImportSpec {
                name: request.name.clone(),
                source,
                sha256: request.sha256.clone(),
                tags: owner_tags(principal, &request.tags),
            },
        };
        let target = Target::new(env, format!("{env}/images/{}", request.name));
        self.start::<ImageChanges>(
            principal,
            target,
            &InEnvironment::new(env, change),
            idempotency,
        )
        .await
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
        if let Some(operation) = self.replayed(principal, idempotency).await? {
            return Ok(operation);
        }
        let image = self.image(principal, env, id).await?;
        let change = ImageChange::Delete {
            region: image.region.clone(),
            id: id.to_string(),
            snapshots: image.snapshots.clone(),
        };
        let target = Target::new(env, format!("{env}/{id}")).owned_by(image.org.as_deref());
        self.start::<ImageChanges>(
            principal,
            target,
            &InEnvironment::new(env, change),
            idempotency,
        )
        .await
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
