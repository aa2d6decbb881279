//! Images as the `Images` capability: a store under the data dir. An image is imported
//! from a URL (a qcow2 or raw disk, or a kernel and initrd for direct boot; streamed,
//! checksummed, with progress) or made from a stopped instance (`qemu-img convert` of its
//! disk, which flattens the overlay). An image an instance uses cannot be deleted.

use async_trait::async_trait;
use futures::StreamExt;
use overcast_provider::{
    ImageSpec, Images, ImportSource, ImportSpec, Progress, ProviderError, ProviderErrorKind,
};
use overcast_types::Image;
use sha2::{Digest, Sha256};
use std::path::Path;
use tokio::io::AsyncWriteExt;

use crate::records::{self, Desired, ImageRecord};
use crate::vm::{self, VmFiles};
use crate::{QemuProvider, REGION};

fn bad_source(field: &'static str, message: String) -> ProviderError {
    ProviderError::new(ProviderErrorKind::InvalidInput, "invalid_source", message).with_field(field)
}

impl QemuProvider {
    fn image_of(&self, record: ImageRecord) -> Image {
        Image {
            id: record.id,
            name: record.name,
            description: record.description,
            region: REGION.into(),
            state: record.state,
            created_at: Some(record.created_at),
            snapshots: Vec::new(),
            tags: record.tags,
            org: None,
        }
    }

    /// Streams `url` into `target`, answering the bytes' SHA-256.
    async fn fetch(
        &self,
        field: &'static str,
        url: &str,
        target: &Path,
        progress: Progress<'_>,
        done_before: u64,
    ) -> Result<(String, u64), ProviderError> {
        let mut out = tokio::fs::File::create(target)
            .await
            .map_err(|e| records::io_error(&format!("cannot write {}: {e}", target.display())))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut write = |chunk: &[u8], hasher: &mut Sha256| {
            hasher.update(chunk);
            written += chunk.len() as u64;
            written
        };
        if let Some(path) = url.strip_prefix("file://") {
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| bad_source(field, format!("cannot read {path}: {e}")))?;
            let total = file.metadata().await.ok().map(|m| m.len());
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                use tokio::io::AsyncReadExt;
                let n = file
                    .read(&mut buffer)
                    .await
                    .map_err(|e| bad_source(field, format!("cannot read {path}: {e}")))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buffer[..n])
                    .await
                    .map_err(|e| records::io_error(&e.to_string()))?;
                let so_far = write(&buffer[..n], &mut hasher);
                progress(done_before + so_far, total.map(|t| done_before + t));
            }
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let response = reqwest::get(url)
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| bad_source(field, format!("cannot fetch {url}: {e}")))?;
            let total = response.content_length();
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk =
                    chunk.map_err(|e| bad_source(field, format!("{url} broke off: {e}")))?;
                out.write_all(&chunk)
                    .await
                    .map_err(|e| records::io_error(&e.to_string()))?;
                let so_far = write(&chunk, &mut hasher);
                progress(done_before + so_far, total.map(|t| done_before + t));
            }
        } else {
            return Err(bad_source(
                field,
                format!("`{url}` is not an http://, https:// or file:// URL"),
            ));
        }
        out.flush()
            .await
            .map_err(|e| records::io_error(&e.to_string()))?;
        Ok((hex::encode(hasher.finalize()), written))
    }

    /// The format `qemu-img` reads in a disk file: `qcow2` or `raw`, else bad input.
    async fn disk_format(&self, file: &Path) -> Result<String, ProviderError> {
        let info = vm::run(
            &self.host.qemu_img,
            &["info".as_ref(), "--output=json".as_ref(), file.as_os_str()],
        )
        .await?;
        let format = serde_json::from_str::<serde_json::Value>(&info)
            .ok()
            .and_then(|v| v["format"].as_str().map(str::to_string))
            .unwrap_or_default();
        match format.as_str() {
            "qcow2" | "raw" => Ok(format),
            other => Err(bad_source(
                "source",
                format!("the source is a `{other}` image; qcow2 and raw are supported"),
            )),
        }
    }

    async fn import(
        &self,
        id: &str,
        spec: &ImportSpec,
        progress: Progress<'_>,
    ) -> Result<ImageRecord, ProviderError> {
        let dir = self.layout.image_dir(id);
        let mut record = ImageRecord {
            id: id.to_string(),
            name: spec.name.clone(),
            description: None,
            created_at: records::now(),
            state: "available".into(),
            disk: None,
            kernel: None,
            initrd: None,
            cmdline: None,
            sha256: None,
            tags: spec.tags.clone(),
        };
        let checked = match &spec.source {
            ImportSource::Disk { url } => {
                let fetched = dir.join("disk.download");
                let (sha256, _) = self.fetch("source", url, &fetched, progress, 0).await?;
                let format = self.disk_format(&fetched).await?;
                let file = format!("disk.{format}");
                std::fs::rename(&fetched, dir.join(&file))
                    .map_err(|e| records::io_error(&e.to_string()))?;
                record.disk = Some((file, format));
                sha256
            }
            ImportSource::Kernel {
                kernel_url,
                initrd_url,
                cmdline,
            } => {
                let (sha256, size) = self
                    .fetch("kernel", kernel_url, &dir.join("vmlinuz"), progress, 0)
                    .await?;
                self.fetch(
                    "initrd",
                    initrd_url,
                    &dir.join("initrd.img"),
                    progress,
                    size,
                )
                .await?;
                record.kernel = Some("vmlinuz".into());
                record.initrd = Some("initrd.img".into());
                record.cmdline = cmdline.clone();
                sha256
            }
        };
        if let Some(expected) = &spec.sha256 {
            if !expected.eq_ignore_ascii_case(&checked) {
                return Err(bad_source(
                    "sha256",
                    format!("the source's SHA-256 is {checked}, not {expected}"),
                ));
            }
        }
        record.sha256 = Some(checked);
        records::write(&dir.join("image.json"), &record)?;
        Ok(record)
    }
}

#[async_trait]
impl Images for QemuProvider {
    async fn list_images(
        &self,
        region: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<Image>, ProviderError> {
        if region.is_some_and(|r| r != REGION) {
            return Ok(Vec::new());
        }
        let mut found: Vec<ImageRecord> = records::all(&self.layout.images(), "image.json")?;
        found.retain(|r| ids.is_empty() || ids.contains(&r.id));
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found.into_iter().map(|r| self.image_of(r)).collect())
    }

    async fn create_image(&self, spec: &ImageSpec) -> Result<Image, ProviderError> {
        let source: crate::records::VmRecord = records::read(
            &VmFiles::new(&self.layout, &spec.instance_id).record(),
        )?
        .ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::InvalidInput,
                "instance_not_found",
                format!("no instance {}", spec.instance_id),
            )
            .with_field("instance_id")
        })?;
        let files = VmFiles::new(&self.layout, &source.id);
        if source.desired == Desired::Terminated || vm::running_pid(&files, &source.id).is_some() {
            return Err(ProviderError::new(
                ProviderErrorKind::Conflict,
                "wrong_state",
                format!(
                    "instance {} must be stopped (not running or terminated) to make an image of its disk",
                    source.id
                ),
            ));
        }
        let base = self.image_record(&source.image)?;
        let id = records::new_id("img");
        let dir = self.layout.image_dir(&id);
        std::fs::create_dir_all(&dir).map_err(|e| records::io_error(&e.to_string()))?;
        let made = async {
            let disk = dir.join("disk.qcow2");
            vm::run(
                &self.host.qemu_img,
                &[
                    "convert".as_ref(),
                    "-O".as_ref(),
                    "qcow2".as_ref(),
                    files.disk().as_os_str(),
                    disk.as_os_str(),
                ],
            )
            .await?;
            // A kernel image's boot files come along, so the new image boots the same way.
            for file in [&base.kernel, &base.initrd].into_iter().flatten() {
                std::fs::copy(self.layout.image_dir(&base.id).join(file), dir.join(file))
                    .map_err(|e| records::io_error(&e.to_string()))?;
            }
            let record = ImageRecord {
                id: id.clone(),
                name: spec.name.clone(),
                description: spec.description.clone(),
                created_at: records::now(),
                state: "available".into(),
                disk: Some(("disk.qcow2".into(), "qcow2".into())),
                kernel: base.kernel.clone(),
                initrd: base.initrd.clone(),
                cmdline: base.cmdline.clone(),
                sha256: None,
                tags: spec.tags.clone(),
            };
            records::write(&dir.join("image.json"), &record)?;
            Ok(record)
        }
        .await;
        match made {
            Ok(record) => Ok(self.image_of(record)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    async fn deregister_image(&self, _region: &str, id: &str) -> Result<(), ProviderError> {
        let dir = self.layout.image_dir(id);
        if !dir.exists() {
            return Ok(());
        }
        let users: Vec<String> = self
            .vm_records()?
            .into_iter()
            .filter(|r| r.image == id && r.desired != Desired::Terminated)
            .map(|r| r.id)
            .collect();
        if !users.is_empty() {
            return Err(ProviderError::new(
                ProviderErrorKind::Conflict,
                "image_in_use",
                format!(
                    "image {id} is used by {}: terminate them first",
                    users.join(", ")
                ),
            ));
        }
        std::fs::remove_dir_all(&dir).map_err(|e| records::io_error(&e.to_string()))
    }

    async fn delete_snapshot(&self, _region: &str, _id: &str) -> Result<(), ProviderError> {
        // Local images have no snapshots apart from themselves.
        Ok(())
    }

    async fn import_image(
        &self,
        spec: &ImportSpec,
        progress: Progress<'_>,
    ) -> Result<Image, ProviderError> {
        let id = records::new_id("img");
        let dir = self.layout.image_dir(&id);
        std::fs::create_dir_all(&dir).map_err(|e| records::io_error(&e.to_string()))?;
        match self.import(&id, spec, progress).await {
            Ok(record) => Ok(self.image_of(record)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }
}
