//! Secrets as the `Secrets` capability, after AWS Secrets Manager: secrets by name per
//! region, versions labelled with stages (`AWSCURRENT`, `AWSPREVIOUS`), client tokens that
//! make a repeated create or value update one version, and deletion after a recovery window
//! that a restore cancels. Values live only in the simulated cloud's memory and never reach
//! a message.

use async_trait::async_trait;
use overcast_provider::{
    ProviderError, ProviderErrorKind as Kind, SecretSpec, Secrets, VersionWanted,
};
use overcast_types::{validate_secret_name, Secret, SecretData, SecretValue};
use std::collections::BTreeMap;
use std::ops::{Bound, RangeInclusive};
use std::time::Duration;

use crate::compute::check_tags;
use crate::errors::{refusal, validation};
use crate::world::World;
use crate::SimProvider;

/// The stage of the version a read gets unless it asks for another.
const CURRENT: &str = "AWSCURRENT";

/// The stage the current version moves to when a new one is put.
const PREVIOUS: &str = "AWSPREVIOUS";

/// Secrets Manager's largest page of ListSecrets.
const LIST_PAGE: usize = 100;

/// Secrets Manager's largest value: 64 KiB.
const MAX_VALUE: usize = 64 * 1024;

/// The versions a secret keeps: past it, the oldest without a stage go.
const MAX_VERSIONS: usize = 100;

/// A client request token's length.
const TOKEN_LENGTH: RangeInclusive<usize> = 32..=64;

/// The recovery windows Secrets Manager takes, in days (0 is no window at all).
const WINDOW_DAYS: RangeInclusive<u32> = 7..=30;

const DAY: Duration = Duration::from_secs(24 * 3600);

pub(crate) struct SecretRecord {
    arn: String,
    description: Option<String>,
    kms_key_id: Option<String>,
    created_at: String,
    last_changed_at: String,
    tags: BTreeMap<String, String>,
    /// By version id. A version whose stages are all gone is deprecated: readable by its
    /// id, not listed.
    versions: BTreeMap<String, VersionRecord>,
    /// Versions made so far, which numbers them.
    made: u64,
    deletion: Option<Deletion>,
}

struct VersionRecord {
    data: SecretData,
    stages: Vec<String>,
    number: u64,
}

/// A scheduled deletion: due at a time of the simulated clock, shown as a date.
struct Deletion {
    due: Duration,
    date: String,
}

impl SecretRecord {
    fn to_secret(&self, name: &str, region: &str) -> Secret {
        Secret {
            name: name.to_string(),
            arn: Some(self.arn.clone()),
            region: region.to_string(),
            description: self.description.clone(),
            kms_key_id: self.kms_key_id.clone(),
            created_at: Some(self.created_at.clone()),
            last_changed_at: Some(self.last_changed_at.clone()),
            deletion_date: self.deletion.as_ref().map(|d| d.date.clone()),
            rotation_enabled: false,
            versions: self
                .versions
                .iter()
                .filter(|(_, v)| !v.stages.is_empty())
                .map(|(id, v)| (id.clone(), v.stages.clone()))
                .collect(),
            tags: self.tags.clone(),
            org: None,
        }
    }

    /// Refuses what a secret scheduled for deletion does not allow.
    fn live(&self) -> Result<(), ProviderError> {
        match self.deletion {
            Some(_) => Err(wrong_state(
                "You can't perform this operation on the secret because it was marked for deletion.",
            )),
            None => Ok(()),
        }
    }

    /// Adds a version that becomes current: the current one becomes previous, the previous
    /// one loses its stage.
    fn add_version(&mut self, id: String, data: SecretData, at: String) {
        for version in self.versions.values_mut() {
            version.stages.retain(|s| s != PREVIOUS);
            for stage in &mut version.stages {
                if stage == CURRENT {
                    *stage = PREVIOUS.to_string();
                }
            }
        }
        self.made += 1;
        self.versions.insert(
            id,
            VersionRecord {
                data,
                stages: vec![CURRENT.to_string()],
                number: self.made,
            },
        );
        while self.versions.len() > MAX_VERSIONS {
            let oldest = self
                .versions
                .iter()
                .filter(|(_, v)| v.stages.is_empty())
                .min_by_key(|(_, v)| v.number)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.versions.remove(&id),
                None => break,
            };
        }
        self.last_changed_at = at;
    }
}

fn secret_not_found() -> ProviderError {
    refusal(
        Kind::NotFound,
        "secret_not_found",
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    )
}

fn version_not_found(what: &str, which: &str) -> ProviderError {
    refusal(
        Kind::NotFound,
        "secret_not_found",
        "ResourceNotFoundException",
        format!("Secrets Manager can't find the specified secret value for {what}: {which}"),
    )
}

/// Secrets Manager's `InvalidRequestException`, which the AWS backend reports as a wrong
/// state: mostly a secret scheduled for deletion.
fn wrong_state(message: &str) -> ProviderError {
    refusal(
        Kind::Conflict,
        "wrong_state",
        "InvalidRequestException",
        message,
    )
}

/// A version asked for again with another value.
fn version_exists() -> ProviderError {
    refusal(
        Kind::Conflict,
        "secret_exists",
        "ResourceExistsException",
        "You can't modify an existing version, you can only create new versions.",
    )
    .with_field("name")
}

/// Tags as Secrets Manager and SSM take them: EC2's limits, their own refusal.
pub(crate) fn check_service_tags(tags: &BTreeMap<String, String>) -> Result<(), ProviderError> {
    check_tags(tags).map_err(|mut e| {
        e.backend_code = Some("ValidationException".into());
        e
    })
}

fn check_value(value: &SecretData) -> Result<(), ProviderError> {
    let size = match value {
        SecretData::Text(text) => text.len(),
        SecretData::Binary(bytes) => bytes.len(),
    };
    if size > MAX_VALUE {
        return Err(validation(
            "value",
            format!("a secret's value has at most {MAX_VALUE} bytes; this one has {size}"),
        ));
    }
    Ok(())
}

/// The secrets of a region, those whose deletion came due gone.
fn secrets_in<'a>(
    world: &'a mut World,
    region: &str,
) -> Result<&'a mut BTreeMap<String, SecretRecord>, ProviderError> {
    let now = world.clock.now();
    let secrets = &mut world.region_mut(region)?.secrets;
    secrets.retain(|_, s| s.deletion.as_ref().is_none_or(|d| now < d.due));
    Ok(secrets)
}

/// The name of the secret `id` names, by name or by ARN, as Secrets Manager takes either.
fn name_of(secrets: &BTreeMap<String, SecretRecord>, id: &str) -> Option<String> {
    if secrets.contains_key(id) {
        return Some(id.to_string());
    }
    secrets
        .iter()
        .find(|(_, s)| s.arn == id)
        .map(|(name, _)| name.clone())
}

fn find<'a>(
    secrets: &'a mut BTreeMap<String, SecretRecord>,
    id: &str,
) -> Result<(String, &'a mut SecretRecord), ProviderError> {
    let name = name_of(secrets, id).ok_or_else(secret_not_found)?;
    let record = secrets.get_mut(&name).ok_or_else(secret_not_found)?;
    Ok((name, record))
}

impl SimProvider {
    /// The client token that counts, if one does: Secrets Manager makes it the new
    /// version's id. None when none was given, or when the settings ignore tokens.
    fn honoured_token<'a>(&self, token: &'a str) -> Result<Option<&'a str>, ProviderError> {
        if self.settings.ignore_client_token || token.is_empty() {
            return Ok(None);
        }
        if !TOKEN_LENGTH.contains(&token.len()) {
            return Err(validation(
                "client_token",
                "a client request token has 32 to 64 characters",
            ));
        }
        Ok(Some(token))
    }

    fn create(&self, world: &mut World, spec: &SecretSpec) -> Result<(), ProviderError> {
        validate_secret_name("name", &spec.name).map_err(|e| validation("name", e.message))?;
        check_value(&spec.value)?;
        check_service_tags(&spec.tags)?;
        let token = self.honoured_token(&spec.client_token)?;
        let version_id = match token {
            Some(token) => token.to_string(),
            None => world.ids.uuid(),
        };
        let suffix = world.ids.number() & 0xff_ffff;
        let now = world.clock.timestamp();
        let secrets = secrets_in(world, &spec.region)?;
        if let Some(existing) = secrets.get(&spec.name) {
            if existing.deletion.is_some() {
                return Err(wrong_state(
                    "You can't create this secret because a secret with this name is already scheduled for deletion.",
                ));
            }
            // The same create again: its token is the first version's id.
            return match token.and_then(|t| existing.versions.get(t)) {
                Some(version) if version.data == spec.value => Ok(()),
                Some(_) => Err(version_exists()),
                None => Err(refusal(
                    Kind::Conflict,
                    "secret_exists",
                    "ResourceExistsException",
                    format!(
                        "The operation failed because the secret {} already exists.",
                        spec.name
                    ),
                )
                .with_field("name")),
            };
        }
        let mut record = SecretRecord {
            arn: format!(
                "arn:sim:secretsmanager:{}:000000000000:secret:{}-{suffix:06x}",
                spec.region, spec.name
            ),
            description: spec.description.clone(),
            kms_key_id: spec.kms_key_id.clone(),
            created_at: now.clone(),
            last_changed_at: now.clone(),
            tags: spec.tags.clone(),
            versions: BTreeMap::new(),
            made: 0,
            deletion: None,
        };
        record.add_version(version_id, spec.value.clone(), now);
        secrets.insert(spec.name.clone(), record);
        Ok(())
    }

    fn put_value(
        &self,
        world: &mut World,
        region: &str,
        name: &str,
        value: &SecretData,
        client_token: &str,
    ) -> Result<String, ProviderError> {
        check_value(value)?;
        let token = self.honoured_token(client_token)?;
        let fresh = world.ids.uuid();
        let now = world.clock.timestamp();
        let (_, record) = find(secrets_in(world, region)?, name)?;
        record.live()?;
        if let Some(token) = token {
            if let Some(version) = record.versions.get(token) {
                // The same update again adds nothing; another value under its token is
                // refused.
                return if version.data == *value {
                    Ok(token.to_string())
                } else {
                    Err(version_exists())
                };
            }
        }
        let id = token.map_or(fresh, str::to_string);
        record.add_version(id.clone(), value.clone(), now);
        Ok(id)
    }

    fn delete(
        &self,
        world: &mut World,
        region: &str,
        name: &str,
        window_days: u32,
    ) -> Result<Option<String>, ProviderError> {
        if window_days != 0 && !WINDOW_DAYS.contains(&window_days) {
            return Err(refusal(
                Kind::InvalidInput,
                "invalid_input",
                "InvalidParameterException",
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive), or 0 to delete at once.",
            )
            .with_field("window"));
        }
        let window = DAY * window_days;
        let due = world.clock.now() + window;
        let now = world.clock.timestamp();
        let date = world.clock.timestamp_after(window);
        let secrets = secrets_in(world, region)?;
        let (name, record) = find(secrets, name)?;
        // Forced, it goes at once, scheduled or not; Secrets Manager dates it now.
        if window_days == 0 {
            secrets.remove(&name);
            return Ok(Some(now));
        }
        if record.deletion.is_some() {
            return Err(wrong_state(
                "You can't perform this operation on the secret because it was already scheduled for deletion.",
            ));
        }
        record.deletion = Some(Deletion {
            due,
            date: date.clone(),
        });
        record.last_changed_at = now;
        Ok(Some(date))
    }

    /// Changes the tags of secrets by name, one call (TagResource or UntagResource) each.
    pub(crate) async fn change_secret_tags(
        &self,
        region: &str,
        names: &[String],
        action: &'static str,
        change: &(dyn Fn(&mut BTreeMap<String, String>) + Sync),
    ) -> Result<(), ProviderError> {
        for name in names {
            self.run(action, region, |world| {
                let (_, record) = find(secrets_in(world, region)?, name)?;
                record.live()?;
                let mut tags = record.tags.clone();
                change(&mut tags);
                check_service_tags(&tags)?;
                record.tags = tags;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Secrets for SimProvider {
    /// Pages of ListSecrets, one call each, until the last.
    async fn list_secrets(&self, region: &str) -> Result<Vec<Secret>, ProviderError> {
        let mut secrets: Vec<Secret> = Vec::new();
        loop {
            let after = secrets.last().map(|s| s.name.clone());
            let (page, more) = self
                .run("ListSecrets", region, |world| {
                    let start = match &after {
                        Some(name) => Bound::Excluded(name.as_str()),
                        None => Bound::Unbounded,
                    };
                    let mut page: Vec<Secret> = secrets_in(world, region)?
                        .range::<str, _>((start, Bound::Unbounded))
                        .take(LIST_PAGE + 1)
                        .map(|(name, s)| s.to_secret(name, region))
                        .collect();
                    let more = page.len() > LIST_PAGE;
                    page.truncate(LIST_PAGE);
                    Ok((page, more))
                })
                .await?;
            secrets.extend(page);
            if !more {
                return Ok(secrets);
            }
        }
    }

    async fn secret(&self, region: &str, name: &str) -> Result<Option<Secret>, ProviderError> {
        self.run("DescribeSecret", region, |world| {
            let secrets = secrets_in(world, region)?;
            Ok(name_of(secrets, name).and_then(|name| {
                secrets
                    .get(&name)
                    .map(|record| record.to_secret(&name, region))
            }))
        })
        .await
    }

    /// CreateSecret, then DescribeSecret for what was made, as the AWS backend does.
    async fn create_secret(&self, spec: &SecretSpec) -> Result<Secret, ProviderError> {
        self.run("CreateSecret", &spec.region, |world| {
            self.create(world, spec)
        })
        .await?;
        self.secret(&spec.region, &spec.name).await?.ok_or_else(|| {
            ProviderError::new(
                Kind::Refused,
                "backend_refused",
                format!("secret {} was created but cannot be found", spec.name),
            )
        })
    }

    async fn put_secret_value(
        &self,
        region: &str,
        name: &str,
        value: &SecretData,
        client_token: &str,
    ) -> Result<String, ProviderError> {
        self.run("PutSecretValue", region, |world| {
            self.put_value(world, region, name, value, client_token)
        })
        .await
    }

    async fn secret_value(
        &self,
        region: &str,
        name: &str,
        wanted: &VersionWanted,
    ) -> Result<SecretValue, ProviderError> {
        self.run("GetSecretValue", region, |world| {
            let (name, record) = find(secrets_in(world, region)?, name)?;
            record.live()?;
            let (id, version) = match (&wanted.version_id, &wanted.stage) {
                (Some(id), stage) => {
                    let found = record
                        .versions
                        .get_key_value(id)
                        .ok_or_else(|| version_not_found("VersionId", id))?;
                    if let Some(stage) = stage.as_ref().filter(|s| !found.1.stages.contains(s)) {
                        return Err(version_not_found("staging label", stage));
                    }
                    found
                }
                (None, stage) => {
                    let stage = stage.as_deref().unwrap_or(CURRENT);
                    record
                        .versions
                        .iter()
                        .find(|(_, v)| v.stages.iter().any(|s| s == stage))
                        .ok_or_else(|| version_not_found("staging label", stage))?
                }
            };
            Ok(SecretValue::new(
                name,
                id.clone(),
                version.stages.clone(),
                version.data.clone(),
            ))
        })
        .await
    }

    async fn delete_secret(
        &self,
        region: &str,
        name: &str,
        window_days: u32,
    ) -> Result<Option<String>, ProviderError> {
        self.run("DeleteSecret", region, |world| {
            self.delete(world, region, name, window_days)
        })
        .await
    }

    async fn restore_secret(&self, region: &str, name: &str) -> Result<(), ProviderError> {
        self.run("RestoreSecret", region, |world| {
            let now = world.clock.timestamp();
            let (_, record) = find(secrets_in(world, region)?, name)?;
            if record.deletion.take().is_some() {
                record.last_changed_at = now;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{provider, settings};
    use crate::{Faults, Settings};
    use overcast_provider::{ResourceKind, Tags};

    const TOKEN_1: &str = "00000000000000000000000000000001";
    const TOKEN_2: &str = "00000000000000000000000000000002";
    const TOKEN_3: &str = "00000000000000000000000000000003";

    fn text(value: &str) -> SecretData {
        SecretData::Text(value.to_string())
    }

    fn spec(name: &str, value: &str, token: &str) -> SecretSpec {
        SecretSpec {
            region: "sim-1".into(),
            name: name.into(),
            value: text(value),
            description: Some("the database".into()),
            kms_key_id: None,
            tags: BTreeMap::from([("team".to_string(), "data".to_string())]),
            client_token: token.into(),
        }
    }

    fn stage(stage: &str) -> VersionWanted {
        VersionWanted {
            version_id: None,
            stage: Some(stage.into()),
        }
    }

    async fn value(sim: &SimProvider, wanted: &VersionWanted) -> Result<String, ProviderError> {
        sim.secret_value("sim-1", "db", wanted)
            .await
            .map(|v| v.value.unwrap_or_default())
    }

    #[tokio::test]
    async fn a_secret_is_made_once_per_name_and_client_token() {
        let (sim, calls) = provider(settings(0.0));
        let made = sim
            .create_secret(&spec("db", "s3cret", TOKEN_1))
            .await
            .unwrap();
        assert_eq!(made.name, "db");
        assert_eq!(made.region, "sim-1");
        assert_eq!(made.description.as_deref(), Some("the database"));
        assert_eq!(made.tags["team"], "data");
        assert!(made.arn.as_deref().unwrap().contains(":secret:db-"));
        assert_eq!(
            made.versions,
            BTreeMap::from([(TOKEN_1.to_string(), vec![CURRENT.to_string()])])
        );
        assert!(made.deletion_date.is_none());
        assert_eq!(calls.count("CreateSecret", "ok"), 1);
        assert_eq!(calls.count("DescribeSecret", "ok"), 1);

        // The same create again answers the secret it made, and makes nothing more.
        let again = sim
            .create_secret(&spec("db", "s3cret", TOKEN_1))
            .await
            .unwrap();
        assert_eq!(again, made);
        // The same token with another value would change a version.
        let changed = sim
            .create_secret(&spec("db", "other", TOKEN_1))
            .await
            .unwrap_err();
        assert_eq!(
            (changed.code, changed.backend_code.as_deref()),
            ("secret_exists", Some("ResourceExistsException"))
        );
        let taken = sim
            .create_secret(&spec("db", "s3cret", TOKEN_2))
            .await
            .unwrap_err();
        assert_eq!(
            (taken.kind, taken.code, taken.field),
            (Kind::Conflict, "secret_exists", Some("name"))
        );
        assert_eq!(sim.list_secrets("sim-1").await.unwrap().len(), 1);
        // Names are per region.
        let elsewhere = SecretSpec {
            region: "sim-2".into(),
            ..spec("db", "s3cret", TOKEN_2)
        };
        sim.create_secret(&elsewhere).await.unwrap();

        let bad_name = sim
            .create_secret(&spec("has space", "x", TOKEN_3))
            .await
            .unwrap_err();
        assert_eq!(
            (bad_name.code, bad_name.field),
            ("invalid_input", Some("name"))
        );
        let bad_token = sim
            .create_secret(&spec("db2", "x", "short"))
            .await
            .unwrap_err();
        assert_eq!(bad_token.field, Some("client_token"));
        let too_big = SecretSpec {
            value: SecretData::Binary(vec![0; MAX_VALUE + 1]),
            ..spec("db2", "", TOKEN_3)
        };
        let error = sim.create_secret(&too_big).await.unwrap_err();
        assert_eq!(error.field, Some("value"));
        assert!(sim.secret("sim-1", "db2").await.unwrap().is_none());
        assert!(sim.secret("sim-1", "nope").await.unwrap().is_none());
        // By its ARN too.
        let by_arn = sim
            .secret("sim-1", made.arn.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(by_arn.unwrap().name, "db");
    }

    #[tokio::test]
    async fn ignoring_client_tokens_refuses_a_repeated_create_as_moto_does() {
        let (sim, _) = provider(Settings {
            ignore_client_token: true,
            ..settings(0.0)
        });
        sim.create_secret(&spec("db", "v", TOKEN_1)).await.unwrap();
        let again = sim
            .create_secret(&spec("db", "v", TOKEN_1))
            .await
            .unwrap_err();
        assert_eq!(again.code, "secret_exists");
        let first = sim
            .put_secret_value("sim-1", "db", &text("w"), TOKEN_2)
            .await
            .unwrap();
        let second = sim
            .put_secret_value("sim-1", "db", &text("w"), TOKEN_2)
            .await
            .unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn values_move_through_stages_as_versions_are_added() {
        let (sim, _) = provider(settings(0.0));
        sim.create_secret(&spec("db", "one", TOKEN_1))
            .await
            .unwrap();
        let second = sim
            .put_secret_value("sim-1", "db", &text("two"), TOKEN_2)
            .await
            .unwrap();
        assert_eq!(second, TOKEN_2);
        // A repeated update adds nothing and answers the same version.
        let repeated = sim
            .put_secret_value("sim-1", "db", &text("two"), TOKEN_2)
            .await
            .unwrap();
        assert_eq!(repeated, TOKEN_2);
        let clash = sim
            .put_secret_value("sim-1", "db", &text("2"), TOKEN_2)
            .await
            .unwrap_err();
        assert_eq!(
            clash.backend_code.as_deref(),
            Some("ResourceExistsException")
        );
        let versions = sim.secret("sim-1", "db").await.unwrap().unwrap().versions;
        assert_eq!(
            versions,
            BTreeMap::from([
                (TOKEN_1.to_string(), vec![PREVIOUS.to_string()]),
                (TOKEN_2.to_string(), vec![CURRENT.to_string()]),
            ])
        );

        let third = sim
            .put_secret_value("sim-1", "db", &text("three"), TOKEN_3)
            .await
            .unwrap();
        let versions = sim.secret("sim-1", "db").await.unwrap().unwrap().versions;
        // The first version has no stage left: it is no longer listed.
        assert_eq!(
            versions,
            BTreeMap::from([
                (TOKEN_2.to_string(), vec![PREVIOUS.to_string()]),
                (third.clone(), vec![CURRENT.to_string()]),
            ])
        );
        let current = sim
            .secret_value("sim-1", "db", &VersionWanted::default())
            .await
            .unwrap();
        assert_eq!(
            (current.version_id.as_str(), current.value.as_deref()),
            (TOKEN_3, Some("three"))
        );
        assert_eq!(current.stages, [CURRENT]);
        assert_eq!(value(&sim, &stage(PREVIOUS)).await.unwrap(), "two");
        let by_id = VersionWanted {
            version_id: Some(TOKEN_1.into()),
            stage: None,
        };
        assert_eq!(value(&sim, &by_id).await.unwrap(), "one");
        let both = VersionWanted {
            version_id: Some(TOKEN_2.into()),
            stage: Some(PREVIOUS.into()),
        };
        assert_eq!(value(&sim, &both).await.unwrap(), "two");
        let mismatched = VersionWanted {
            version_id: Some(TOKEN_2.into()),
            stage: Some(CURRENT.into()),
        };
        let error = value(&sim, &mismatched).await.unwrap_err();
        assert_eq!(
            (error.kind, error.code),
            (Kind::NotFound, "secret_not_found")
        );
        let unknown = value(&sim, &stage("AWSPENDING")).await.unwrap_err();
        assert_eq!(unknown.code, "secret_not_found");
        let missing = sim
            .secret_value("sim-1", "nope", &VersionWanted::default())
            .await
            .unwrap_err();
        assert_eq!(
            (missing.code, missing.backend_code.as_deref()),
            ("secret_not_found", Some("ResourceNotFoundException"))
        );
        // A value shows in no message, and binary values come back base64-encoded.
        assert!(!format!("{current:?}").contains("three"));
        let binary = SecretSpec {
            value: SecretData::Binary(vec![0, 1, 2]),
            ..spec("bin", "", TOKEN_1)
        };
        sim.create_secret(&binary).await.unwrap();
        let read = sim
            .secret_value("sim-1", "bin", &VersionWanted::default())
            .await
            .unwrap();
        assert_eq!(
            (read.value, read.value_base64.as_deref()),
            (None, Some("AAEC"))
        );
    }

    #[tokio::test]
    async fn a_deletion_waits_out_its_window_unless_restored() {
        let (sim, calls) = provider(settings(0.0));
        sim.create_secret(&spec("db", "one", TOKEN_1))
            .await
            .unwrap();
        let date = sim.delete_secret("sim-1", "db", 7).await.unwrap().unwrap();
        let now = time::OffsetDateTime::now_utc();
        let due =
            time::OffsetDateTime::parse(&date, &time::format_description::well_known::Rfc3339)
                .unwrap();
        let window = due - now;
        assert!(
            window > time::Duration::days(7) - time::Duration::minutes(1)
                && window <= time::Duration::days(7),
            "{date}"
        );
        // Still listed and described, with its date.
        let listed = sim.list_secrets("sim-1").await.unwrap();
        assert_eq!(listed[0].deletion_date.as_deref(), Some(date.as_str()));
        let described = sim.secret("sim-1", "db").await.unwrap().unwrap();
        assert_eq!(described.deletion_date, Some(date));

        // Nothing else is allowed while it waits.
        let refused = |e: ProviderError| {
            assert_eq!(
                (e.kind, e.code, e.backend_code.as_deref()),
                (
                    Kind::Conflict,
                    "wrong_state",
                    Some("InvalidRequestException")
                )
            );
            assert!(e.message.contains("marked for deletion"), "{}", e.message);
        };
        refused(value(&sim, &VersionWanted::default()).await.unwrap_err());
        refused(
            sim.put_secret_value("sim-1", "db", &text("two"), TOKEN_2)
                .await
                .unwrap_err(),
        );
        let names = vec!["db".to_string()];
        let tags = BTreeMap::from([("a".to_string(), "1".to_string())]);
        refused(
            sim.set_tags("sim-1", ResourceKind::Secret, &names, &tags)
                .await
                .unwrap_err(),
        );
        refused(
            sim.remove_tags("sim-1", ResourceKind::Secret, &names, &["team".into()])
                .await
                .unwrap_err(),
        );
        let twice = sim.delete_secret("sim-1", "db", 7).await.unwrap_err();
        assert_eq!(twice.code, "wrong_state");
        let over = sim
            .create_secret(&spec("db", "x", TOKEN_2))
            .await
            .unwrap_err();
        assert_eq!(over.code, "wrong_state");

        sim.restore_secret("sim-1", "db").await.unwrap();
        assert_eq!(calls.count("RestoreSecret", "ok"), 1);
        let restored = sim.secret("sim-1", "db").await.unwrap().unwrap();
        assert!(restored.deletion_date.is_none());
        assert_eq!(value(&sim, &VersionWanted::default()).await.unwrap(), "one");

        // Past its window, it is gone for good.
        sim.delete_secret("sim-1", "db", 30).await.unwrap();
        sim.advance_clock(DAY * 29);
        assert!(sim.secret("sim-1", "db").await.unwrap().is_some());
        sim.advance_clock(DAY * 2);
        assert!(sim.secret("sim-1", "db").await.unwrap().is_none());
        assert!(sim.list_secrets("sim-1").await.unwrap().is_empty());
        let gone = sim.restore_secret("sim-1", "db").await.unwrap_err();
        assert_eq!(gone.code, "secret_not_found");
        // Its name is free again.
        sim.create_secret(&spec("db", "new", TOKEN_3))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_forced_deletion_is_at_once_and_windows_are_checked() {
        let (sim, _) = provider(settings(0.0));
        sim.create_secret(&spec("db", "one", TOKEN_1))
            .await
            .unwrap();
        for bad in [1, 6, 31, 365] {
            let error = sim.delete_secret("sim-1", "db", bad).await.unwrap_err();
            assert_eq!(
                (error.kind, error.code, error.field),
                (Kind::InvalidInput, "invalid_input", Some("window")),
                "{bad}"
            );
        }
        assert!(sim
            .secret("sim-1", "db")
            .await
            .unwrap()
            .unwrap()
            .deletion_date
            .is_none());
        assert!(sim.delete_secret("sim-1", "db", 0).await.unwrap().is_some());
        assert!(sim.secret("sim-1", "db").await.unwrap().is_none());
        let missing = sim.delete_secret("sim-1", "db", 0).await.unwrap_err();
        assert_eq!(missing.code, "secret_not_found");
        // A scheduled secret can still be forced out.
        sim.create_secret(&spec("db", "one", TOKEN_2))
            .await
            .unwrap();
        sim.delete_secret("sim-1", "db", 7).await.unwrap();
        sim.delete_secret("sim-1", "db", 0).await.unwrap();
        assert!(sim.list_secrets("sim-1").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn listings_page_through_every_secret_and_faults_hit_secret_calls() {
        let (sim, calls) = provider(settings(0.0));
        for i in 0..(LIST_PAGE + 5) {
            let spec = SecretSpec {
                client_token: String::new(),
                ..spec(&format!("s{i:03}"), "v", "")
            };
            sim.create_secret(&spec).await.unwrap();
        }
        let all = sim.list_secrets("sim-1").await.unwrap();
        assert_eq!(all.len(), LIST_PAGE + 5);
        assert!(all.windows(2).all(|w| w[0].name < w[1].name));
        assert_eq!(calls.count("ListSecrets", "ok"), 2);
        assert!(sim.list_secrets("sim-2").await.unwrap().is_empty());

        sim.set_faults(Faults {
            throttle_rate: 1.0,
            actions: vec!["GetSecretValue".into()],
            ..Faults::default()
        });
        let error = sim
            .secret_value("sim-1", "s000", &VersionWanted::default())
            .await
            .unwrap_err();
        assert_eq!(
            (error.code, error.backend_code.as_deref()),
            ("backend_throttled", Some("ThrottlingException"))
        );
        assert!(error.message.starts_with("sim GetSecretValue: "));
        assert_eq!(calls.count("GetSecretValue", "backend_throttled"), 1);
        sim.secret("sim-1", "s000").await.unwrap().unwrap();
        // A create whose answer is lost has made its secret; its repeat answers it.
        sim.set_faults(Faults {
            act_then_fail_rate: 1.0,
            actions: vec!["CreateSecret".into()],
            ..Faults::default()
        });
        let lost = sim
            .create_secret(&spec("db", "v", TOKEN_1))
            .await
            .unwrap_err();
        assert_eq!(lost.code, "backend_timeout");
        sim.set_faults(Faults::default());
        let made = sim.create_secret(&spec("db", "v", TOKEN_1)).await.unwrap();
        assert_eq!(made.versions.len(), 1);
    }
}
