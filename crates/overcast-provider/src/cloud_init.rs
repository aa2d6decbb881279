//! The NoCloud seed cloud-init reads a machine's user data from: an ISO 9660 volume
//! labelled `cidata` holding `user-data` and `meta-data`, made with genisoimage. The qemu
//! provider attaches it beside the disk; the proxmox provider uploads it to the cluster.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::{ProviderError, ProviderErrorKind};

/// The program that makes seeds, and how to install it on Debian and Ubuntu.
pub const GENISOIMAGE: &str = "genisoimage";
pub const GENISOIMAGE_HINT: &str = "install genisoimage: `sudo apt-get install genisoimage`";

/// A launch's user data (base64, as the API takes it) as bytes; none is empty.
pub fn decode_user_data(encoded: Option<&str>) -> Result<Vec<u8>, ProviderError> {
    use base64::Engine;
    let Some(encoded) = encoded else {
        return Ok(Vec::new());
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::InvalidInput,
                "invalid_input",
                format!("user_data is not base64: {e}"),
            )
            .with_field("user_data")
        })
}

/// An executable `program` in one of the directories of `path` (a `PATH`-style list).
pub fn find_program(path: &std::ffi::OsStr, program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn io_error(message: String) -> ProviderError {
    ProviderError::new(ProviderErrorKind::Unavailable, "host_io_error", message)
}

/// Writes the seed of the machine `instance_id` (host name `hostname`) to `output`. Empty
/// user data becomes an empty cloud-config, so cloud-init still finds its instance id.
pub async fn write_seed(
    genisoimage: &Path,
    output: &Path,
    instance_id: &str,
    hostname: &str,
    user_data: &[u8],
) -> Result<(), ProviderError> {
    let parent = output.parent().unwrap_or(Path::new("."));
    let staging = tempfile::tempdir_in(parent)
        .map_err(|e| io_error(format!("cannot stage a seed in {}: {e}", parent.display())))?;
    let meta = format!("instance-id: {instance_id}\nlocal-hostname: {hostname}\n");
    let user: &[u8] = if user_data.is_empty() {
        b"#cloud-config\n{}\n"
    } else {
        user_data
    };
    let (user_file, meta_file) = (
        staging.path().join("user-data"),
        staging.path().join("meta-data"),
    );
    std::fs::write(&meta_file, meta)
        .and_then(|()| std::fs::write(&user_file, user))
        .map_err(|e| io_error(format!("cannot write a seed's files: {e}")))?;
    run_program(
        genisoimage,
        &[
            "-quiet".as_ref(),
            "-output".as_ref(),
            output.as_os_str(),
            "-volid".as_ref(),
            "cidata".as_ref(),
            "-joliet".as_ref(),
            "-rock".as_ref(),
            user_file.as_os_str(),
            meta_file.as_os_str(),
        ],
    )
    .await
    .map(|_| ())
}

/// Runs a helper program (qemu-img, genisoimage), answering its failure in its own words.
pub async fn run_program(
    program: &Path,
    args: &[&std::ffi::OsStr],
) -> Result<String, ProviderError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| io_error(format!("cannot run {}: {e}", program.display())))?;
    if !output.status.success() {
        return Err(ProviderError::new(
            ProviderErrorKind::Refused,
            "host_tool_failed",
            format!(
                "{} failed: {}",
                program
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_is_base64_or_a_400_naming_it() {
        assert_eq!(decode_user_data(None).unwrap(), b"");
        assert_eq!(decode_user_data(Some("aGk=")).unwrap(), b"hi");
        let e = decode_user_data(Some("not base64!")).unwrap_err();
        assert_eq!(
            (e.kind, e.field),
            (ProviderErrorKind::InvalidInput, Some("user_data"))
        );
    }
}
