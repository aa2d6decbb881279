//! Templates as overcast's images: listed across the cluster, made from a stopped VM (a
//! full clone of it turned into a template, so the VM stays), and destroyed with purge.
//! A template has no snapshots of its own to delete.

use async_trait::async_trait;
use overcast_provider::{ImageSpec, Images, ProviderError, ProviderErrorKind};
use overcast_types::Image;
use serde_json::Value;

use crate::cluster::Guest;
use crate::compute::TASK_WAIT;
use crate::tags::to_pve_tags;
use crate::{ProxmoxProvider, REGION};

fn image_of(guest: &Guest) -> Image {
    Image {
        id: guest.id(),
        name: guest.name.clone().unwrap_or_else(|| guest.id()),
        description: None,
        region: REGION.into(),
        state: if guest.lock.is_some() {
            "pending"
        } else {
            "available"
        }
        .into(),
        created_at: None,
        snapshots: Vec::new(),
        tags: guest.tags.clone(),
        org: None,
    }
}

impl ProxmoxProvider {
    /// Turns a fresh full clone into the template `spec` asks for.
    async fn finish_template(
        &self,
        node: &str,
        vmid: &str,
        spec: &ImageSpec,
    ) -> Result<(), ProviderError> {
        let vm = format!("/nodes/{node}/qemu/{vmid}");
        let mut config = vec![("tags", to_pve_tags(&spec.tags))];
        if let Some(description) = &spec.description {
            config.push(("description", description.clone()));
        }
        let _: Value = self.client.put(&format!("{vm}/config"), &config).await?;
        let upid: String = self.client.post(&format!("{vm}/template"), &[]).await?;
        self.client.finish(&upid, TASK_WAIT).await
    }
}

#[async_trait]
impl Images for ProxmoxProvider {
    async fn list_images(
        &self,
        region: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<Image>, ProviderError> {
        if region.is_some_and(|r| r != REGION) {
            return Ok(Vec::new());
        }
        Ok(self
            .guests()
            .await?
            .iter()
            .filter(|g| g.template && (ids.is_empty() || ids.contains(&g.id())))
            .map(image_of)
            .collect())
    }

    /// A template of a stopped VM: the VM is cloned whole under the image's name, and the
    /// clone becomes the template. A failure on the way destroys the clone.
    async fn create_image(&self, spec: &ImageSpec) -> Result<Image, ProviderError> {
        let guests = self.guests().await?;
        let source = guests
            .iter()
            .find(|g| !g.template && g.id() == spec.instance_id)
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::NotFound,
                    "instance_not_found",
                    format!("PVE has no VM {}", spec.instance_id),
                )
                .with_field("instance_id")
            })?;
        if source.status != "stopped" {
            return Err(ProviderError::new(
                ProviderErrorKind::Conflict,
                "incorrect_instance_state",
                format!(
                    "VM {} is {}: a template is made from a stopped VM, so stop it first",
                    source.vmid, source.status
                ),
            ));
        }
        let vmid = self.next_vmid().await?;
        let form = [
            ("newid", vmid.clone()),
            ("name", spec.name.clone()),
            ("full", "1".to_string()),
        ];
        let upid: String = self
            .client
            .post(
                &format!("/nodes/{}/qemu/{}/clone", source.node, source.vmid),
                &form,
            )
            .await?;
        self.client.finish(&upid, TASK_WAIT).await?;
        if let Err(e) = self.finish_template(&source.node, &vmid, spec).await {
            self.undo_clone(&vmid).await;
            return Err(e);
        }
        Ok(Image {
            tags: spec.tags.clone(),
            description: spec.description.clone(),
            ..image_of(&Guest {
                vmid: vmid.parse().unwrap_or_default(),
                node: source.node.clone(),
                name: Some(spec.name.clone()),
                status: "stopped".into(),
                template: true,
                lock: None,
                tags: Default::default(),
                maxmem: source.maxmem,
            })
        })
    }

    async fn deregister_image(&self, _region: &str, id: &str) -> Result<(), ProviderError> {
        let guests = self.guests().await?;
        match guests.iter().find(|g| g.template && g.id() == id) {
            Some(template) => self.destroy(template).await,
            None => Ok(()),
        }
    }

    /// Templates keep their disks themselves; there is no snapshot apart from them.
    async fn delete_snapshot(&self, _region: &str, _id: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}
