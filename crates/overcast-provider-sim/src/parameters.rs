//! Parameters as the `Parameters` capability, after SSM Parameter Store: full names per
//! region in a hierarchy of `/`-separated paths, each overwrite a new version whose
//! metadata the history keeps, listings of one level or a whole subtree in pages by name,
//! and `SecureString` values shown only when decrypted. Values live only in the simulated
//! cloud's memory and never reach a message.

use async_trait::async_trait;
use overcast_provider::{
    ParameterPage, ParameterSpec, Parameters, ProviderError, ProviderErrorKind as Kind,
};
use overcast_types::{Parameter, ParameterType};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::errors::{refusal, validation};
use crate::secrets::check_service_tags;
use crate::world::World;
use crate::SimProvider;

/// SSM's largest page of DescribeParameters, and the most names one DeleteParameters takes.
const PAGE: u32 = 50;
const PER_DELETE: usize = 10;

/// SSM's largest page of GetParameterHistory.
const HISTORY_PAGE: usize = 50;

/// The versions SSM keeps of a parameter: past it, the oldest goes.
const MAX_VERSIONS: usize = 100;

/// SSM's limits on a name (characters, levels), a standard parameter's value and a
/// description.
const MAX_NAME: usize = 1011;
const MAX_LEVELS: usize = 15;
const MAX_VALUE: usize = 4096;
const MAX_DESCRIPTION: usize = 1024;

/// The key a `SecureString` is encrypted with unless it names one.
const DEFAULT_KEY: &str = "alias/aws/ssm";

pub(crate) struct ParameterRecord {
    /// The current version's value; earlier values are not kept.
    value: String,
    tags: BTreeMap<String, String>,
    current: Version,
    /// The versions before the current one, oldest first.
    earlier: Vec<Version>,
}

/// What is known of one version of a parameter, its value apart.
#[derive(Clone)]
struct Version {
    number: i64,
    kind: ParameterType,
    description: Option<String>,
    kms_key_id: Option<String>,
    last_modified_at: String,
}

impl Version {
    /// The version as listings and the history show it: no value, no tags.
    fn to_parameter(&self, name: &str) -> Parameter {
        Parameter {
            name: name.to_string(),
            arn: None,
            kind: self.kind,
            version: self.number,
            description: self.description.clone(),
            kms_key_id: self.kms_key_id.clone(),
            last_modified_at: Some(self.last_modified_at.clone()),
            value: None,
            tags: BTreeMap::new(),
        }
    }
}

fn parameter_not_found(name: &str) -> ProviderError {
    refusal(
        Kind::NotFound,
        "parameter_not_found",
        "ParameterNotFound",
        format!("Parameter {name} not found."),
    )
}

/// SSM's answer to a tag call on a parameter that is not there, which the AWS backend
/// reports as a plain refusal.
fn invalid_resource(name: &str) -> ProviderError {
    refusal(
        Kind::Refused,
        "backend_refused",
        "InvalidResourceId",
        format!("The resource ID \"{name}\" is not valid. Verify the ID and try again."),
    )
}

/// Checks a full name as SSM does.
fn check_name(name: &str) -> Result<(), ProviderError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_.-/".contains(c);
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(allowed) {
        return Err(validation(
            "name",
            format!("a parameter name has 1 to {MAX_NAME} letters, digits or _.-/ characters"),
        ));
    }
    if name.contains('/') && (!name.starts_with('/') || name.ends_with('/') || name.contains("//"))
    {
        return Err(validation(
            "name",
            "a parameter name with a hierarchy starts with / and has no empty level",
        ));
    }
    let first = name.trim_start_matches('/').to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(validation(
            "name",
            "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).",
        ));
    }
    if name.matches('/').count() > MAX_LEVELS {
        return Err(refusal(
            Kind::Conflict,
            "limit_exceeded",
            "HierarchyLevelLimitExceededException",
            format!("A parameter name has at most {MAX_LEVELS} levels."),
        ));
    }
    Ok(())
}

fn check_spec(spec: &ParameterSpec) -> Result<(), ProviderError> {
    check_name(&spec.name)?;
    if spec.value.is_empty() || spec.value.len() > MAX_VALUE {
        return Err(validation(
            "value",
            format!("a parameter's value has 1 to {MAX_VALUE} characters"),
        ));
    }
    if spec
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(validation(
            "description",
            format!("a description has at most {MAX_DESCRIPTION} characters"),
        ));
    }
    if spec.kms_key_id.is_some() && spec.kind != ParameterType::SecureString {
        return Err(validation(
            "kms_key_id",
            "KeyId is required for SecureString type parameter only.",
        ));
    }
    Ok(())
}

/// Writes a parameter as one PutParameter does: `tags` only on a new one.
fn put(
    world: &mut World,
    spec: &ParameterSpec,
    tags: &BTreeMap<String, String>,
) -> Result<i64, ProviderError> {
    check_spec(spec)?;
    check_service_tags(tags)?;
    let now = world.clock.timestamp();
    let parameters = &mut world.region_mut(&spec.region)?.parameters;
    let kms_key_id = match spec.kind {
        ParameterType::SecureString => spec
            .kms_key_id
            .clone()
            .or_else(|| Some(DEFAULT_KEY.to_string())),
        _ => None,
    };
    let Some(record) = parameters.get_mut(&spec.name) else {
        let current = Version {
            number: 1,
            kind: spec.kind,
            description: spec.description.clone(),
            kms_key_id,
            last_modified_at: now,
        };
        let record = ParameterRecord {
            value: spec.value.clone(),
            tags: tags.clone(),
            current,
            earlier: Vec::new(),
        };
        parameters.insert(spec.name.clone(), record);
        return Ok(1);
    };
    if !spec.overwrite {
        return Err(refusal(
            Kind::Conflict,
            "parameter_exists",
            "ParameterAlreadyExists",
            "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
        )
        .with_field("name"));
    }
    let next = Version {
        number: record.current.number + 1,
        kind: spec.kind,
        // An overwrite that names no description keeps the one there was.
        description: spec
            .description
            .clone()
            .or_else(|| record.current.description.clone()),
        kms_key_id,
        last_modified_at: now,
    };
    let number = next.number;
    record
        .earlier
        .push(std::mem::replace(&mut record.current, next));
    if record.earlier.len() >= MAX_VERSIONS {
        let excess = record.earlier.len() + 1 - MAX_VERSIONS;
        record.earlier.drain(..excess);
    }
    record.value = spec.value.clone();
    Ok(number)
}

/// One page of the parameters under `path`, by name; the page token is the last name of
/// the page before.
fn page(
    parameters: &BTreeMap<String, ParameterRecord>,
    path: &str,
    recursive: bool,
    limit: u32,
    page_token: Option<&str>,
) -> Result<ParameterPage, ProviderError> {
    if !path.starts_with('/') {
        return Err(validation("path", "a path starts with /"));
    }
    let prefix = format!("{}/", path.trim_end_matches('/'));
    let limit = limit.clamp(1, PAGE) as usize;
    let start = match page_token {
        Some(token) if token >= prefix.as_str() => Bound::Excluded(token),
        _ => Bound::Included(prefix.as_str()),
    };
    let mut listing = ParameterPage::default();
    for (name, record) in parameters.range::<str, _>((start, Bound::Unbounded)) {
        let Some(below) = name.strip_prefix(&prefix) else {
            break;
        };
        if !recursive && below.contains('/') {
            continue;
        }
        if listing.items.len() == limit {
            listing.next_page_token = listing.items.last().map(|p| p.name.clone());
            break;
        }
        listing.items.push(record.current.to_parameter(name));
    }
    Ok(listing)
}

impl SimProvider {
    /// Changes the tags of parameters by full name, one call (AddTagsToResource or
    /// RemoveTagsFromResource) each.
    pub(crate) async fn change_parameter_tags(
        &self,
        region: &str,
        names: &[String],
        action: &'static str,
        change: &(dyn Fn(&mut BTreeMap<String, String>) + Sync),
    ) -> Result<(), ProviderError> {
        for name in names {
            self.run(action, region, |world| {
                let record = world
                    .region_mut(region)?
                    .parameters
                    .get_mut(name)
                    .ok_or_else(|| invalid_resource(name))?;
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
impl Parameters for SimProvider {
    fn limits(&self) -> (u32, usize) {
        (PAGE, PER_DELETE)
    }

    async fn list_parameters(
        &self,
        region: &str,
        path: &str,
        recursive: bool,
        limit: u32,
        page_token: Option<&str>,
    ) -> Result<ParameterPage, ProviderError> {
        self.run("DescribeParameters", region, |world| {
            page(
                &world.region(region)?.parameters,
                path,
                recursive,
                limit,
                page_token,
            )
        })
        .await
    }

    /// As the AWS backend reads one: DescribeParameters, GetParameter for a value it may
    /// show, ListTagsForResource for its tags.
    async fn parameter(
        &self,
        region: &str,
        name: &str,
        decrypt: bool,
    ) -> Result<Option<Parameter>, ProviderError> {
        let described = self
            .run("DescribeParameters", region, |world| {
                Ok(world
                    .region(region)?
                    .parameters
                    .get(name)
                    .map(|r| r.current.clone()))
            })
            .await?;
        let Some(current) = described else {
            return Ok(None);
        };
        let mut parameter = current.to_parameter(name);
        if current.kind != ParameterType::SecureString || decrypt {
            let value = self
                .run("GetParameter", region, |world| {
                    world
                        .region(region)?
                        .parameters
                        .get(name)
                        .map(|r| r.value.clone())
                        .ok_or_else(|| parameter_not_found(name))
                })
                .await?;
            parameter.value = Some(value);
        }
        parameter.tags = self
            .run("ListTagsForResource", region, |world| {
                world
                    .region(region)?
                    .parameters
                    .get(name)
                    .map(|r| r.tags.clone())
                    .ok_or_else(|| invalid_resource(name))
            })
            .await?;
        Ok(Some(parameter))
    }

    /// SSM takes no tags with an overwrite: an overwrite tags in a second call, as the AWS
    /// backend does.
    async fn put_parameter(&self, spec: &ParameterSpec) -> Result<i64, ProviderError> {
        let no_tags = BTreeMap::new();
        let tags = if spec.overwrite { &no_tags } else { &spec.tags };
        let version = self
            .run("PutParameter", &spec.region, |world| put(world, spec, tags))
            .await?;
        if spec.overwrite && !spec.tags.is_empty() {
            let change = |existing: &mut BTreeMap<String, String>| {
                existing.extend(spec.tags.iter().map(|(k, v)| (k.clone(), v.clone())))
            };
            self.change_parameter_tags(
                &spec.region,
                std::slice::from_ref(&spec.name),
                "AddTagsToResource",
                &change,
            )
            .await?;
        }
        Ok(version)
    }

    /// Pages of GetParameterHistory, one call each, until the last.
    async fn parameter_history(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Vec<Parameter>, ProviderError> {
        let mut versions: Vec<Parameter> = Vec::new();
        loop {
            let after = versions.last().map_or(0, |p| p.version);
            let (page, more) = self
                .run("GetParameterHistory", region, |world| {
                    let record = world
                        .region(region)?
                        .parameters
                        .get(name)
                        .ok_or_else(|| parameter_not_found(name))?;
                    let mut page: Vec<Parameter> = record
                        .earlier
                        .iter()
                        .chain(std::iter::once(&record.current))
                        .filter(|v| v.number > after)
                        .take(HISTORY_PAGE + 1)
                        .map(|v| v.to_parameter(name))
                        .collect();
                    let more = page.len() > HISTORY_PAGE;
                    page.truncate(HISTORY_PAGE);
                    Ok((page, more))
                })
                .await?;
            versions.extend(page);
            if !more {
                return Ok(versions);
            }
        }
    }

    async fn delete_parameters(
        &self,
        region: &str,
        names: &[String],
    ) -> Result<Vec<String>, ProviderError> {
        self.run("DeleteParameters", region, |world| {
            if names.is_empty() || names.len() > PER_DELETE {
                return Err(validation(
                    "names",
                    format!(
                        "{} names; one call deletes 1 to {PER_DELETE} parameters",
                        names.len()
                    ),
                ));
            }
            let parameters = &mut world.region_mut(region)?.parameters;
            // A name given twice is deleted once and missing at most once.
            let mut deleted = BTreeSet::new();
            let mut missing = Vec::new();
            for name in names {
                if parameters.remove(name).is_some() {
                    deleted.insert(name);
                } else if !deleted.contains(name) && !missing.contains(name) {
                    missing.push(name.clone());
                }
            }
            Ok(missing)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{provider, settings};
    use crate::Faults;
    use overcast_provider::{ResourceKind, Tags};

    fn spec(name: &str, value: &str) -> ParameterSpec {
        ParameterSpec {
            region: "sim-1".into(),
            name: name.into(),
            value: value.into(),
            kind: ParameterType::String,
            description: None,
            kms_key_id: None,
            tags: BTreeMap::new(),
            overwrite: false,
        }
    }

    fn tag(key: &str, value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(key.to_string(), value.to_string())])
    }

    #[tokio::test]
    async fn a_parameter_is_written_once_then_overwritten_into_new_versions() {
        let (sim, calls) = provider(settings(0.0));
        let first = ParameterSpec {
            description: Some("the database's address".into()),
            tags: tag("team", "data"),
            ..spec("/acme/app/db", "db.internal:5432")
        };
        assert_eq!(sim.put_parameter(&first).await.unwrap(), 1);
        let again = sim.put_parameter(&first).await.unwrap_err();
        assert_eq!(
            (again.kind, again.code, again.field),
            (Kind::Conflict, "parameter_exists", Some("name"))
        );
        assert_eq!(
            again.backend_code.as_deref(),
            Some("ParameterAlreadyExists")
        );

        // An overwrite makes a new version and keeps the description it does not name;
        // its tags come in a second call.
        let second = ParameterSpec {
            overwrite: true,
            tags: tag("tier", "1"),
            ..spec("/acme/app/db", "db2.internal:5432")
        };
        assert_eq!(sim.put_parameter(&second).await.unwrap(), 2);
        assert_eq!(calls.count("AddTagsToResource", "ok"), 1);
        let third = ParameterSpec {
            overwrite: true,
            description: Some("moved".into()),
            ..spec("/acme/app/db", "db3.internal:5432")
        };
        assert_eq!(sim.put_parameter(&third).await.unwrap(), 3);
        assert_eq!(calls.count("AddTagsToResource", "ok"), 1);
        assert_eq!(calls.count("PutParameter", "ok"), 3);

        let read = sim
            .parameter("sim-1", "/acme/app/db", false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.version, 3);
        assert_eq!(read.value.as_deref(), Some("db3.internal:5432"));
        assert_eq!(read.description.as_deref(), Some("moved"));
        let mut both = tag("team", "data");
        both.extend(tag("tier", "1"));
        assert_eq!(read.tags, both);
        assert!(read.last_modified_at.is_some());

        let history = sim
            .parameter_history("sim-1", "/acme/app/db")
            .await
            .unwrap();
        let seen: Vec<_> = history
            .iter()
            .map(|p| (p.version, p.description.as_deref(), p.value.is_some()))
            .collect();
        assert_eq!(
            seen,
            [
                (1, Some("the database's address"), false),
                (2, Some("the database's address"), false),
                (3, Some("moved"), false),
            ]
        );
        let missing = sim
            .parameter_history("sim-1", "/acme/nope")
            .await
            .unwrap_err();
        assert_eq!(
            (missing.kind, missing.code),
            (Kind::NotFound, "parameter_not_found")
        );
        assert!(sim
            .parameter("sim-1", "/acme/nope", true)
            .await
            .unwrap()
            .is_none());
        // Parameters are per region.
        assert!(sim
            .parameter("sim-2", "/acme/app/db", true)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn the_history_keeps_the_last_hundred_versions_and_pages_through_them() {
        let (sim, calls) = provider(settings(0.0));
        sim.put_parameter(&spec("/a/b", "v")).await.unwrap();
        let overwrite = ParameterSpec {
            overwrite: true,
            ..spec("/a/b", "v")
        };
        for _ in 0..104 {
            sim.put_parameter(&overwrite).await.unwrap();
        }
        let history = sim.parameter_history("sim-1", "/a/b").await.unwrap();
        let versions: Vec<i64> = history.iter().map(|p| p.version).collect();
        assert_eq!(versions, (6..=105).collect::<Vec<_>>());
        assert_eq!(calls.count("GetParameterHistory", "ok"), 2);
    }

    #[tokio::test]
    async fn listings_take_one_level_or_the_whole_subtree_in_pages() {
        let (sim, calls) = provider(settings(0.0));
        let names = [
            "/acme/app/a",
            "/acme/app/b",
            "/acme/app/c",
            "/acme/app/deep/x",
            "/acme/app/deep/y/z",
            "/acme/application",
            "/acme/other/q",
            "/zeta/app/a",
        ];
        for name in names {
            sim.put_parameter(&spec(name, "v")).await.unwrap();
        }
        let all = |recursive: bool, limit: u32| {
            let sim = &sim;
            async move {
                let mut pages = Vec::new();
                let mut token: Option<String> = None;
                loop {
                    let page = sim
                        .list_parameters("sim-1", "/acme/app", recursive, limit, token.as_deref())
                        .await
                        .unwrap();
                    assert!(page.items.len() <= limit as usize);
                    assert!(page.items.iter().all(|p| p.value.is_none()));
                    pages.push(page.items.into_iter().map(|p| p.name).collect::<Vec<_>>());
                    token = page.next_page_token;
                    if token.is_none() {
                        return pages;
                    }
                }
            }
        };
        assert_eq!(
            all(false, 2).await,
            [vec!["/acme/app/a", "/acme/app/b"], vec!["/acme/app/c"]]
        );
        assert_eq!(
            all(true, 2).await,
            [
                vec!["/acme/app/a", "/acme/app/b"],
                vec!["/acme/app/c", "/acme/app/deep/x"],
                vec!["/acme/app/deep/y/z"],
            ]
        );
        assert_eq!(calls.count("DescribeParameters", "ok"), 5);
        // A trailing slash is the same path; the root holds everything.
        let one_level = sim
            .list_parameters("sim-1", "/acme/app/", false, 50, None)
            .await
            .unwrap();
        assert_eq!(one_level.items.len(), 3);
        assert!(one_level.next_page_token.is_none());
        let everything = sim
            .list_parameters("sim-1", "/", true, 50, None)
            .await
            .unwrap();
        assert_eq!(everything.items.len(), names.len());
        // A limit past SSM's page is SSM's page.
        for i in 0..(PAGE + 1) {
            sim.put_parameter(&spec(&format!("/many/p{i:02}"), "v"))
                .await
                .unwrap();
        }
        let big = sim
            .list_parameters("sim-1", "/many", false, 1000, None)
            .await
            .unwrap();
        assert_eq!(big.items.len(), PAGE as usize);
        assert_eq!(big.next_page_token.as_deref(), Some("/many/p49"));
        let bad = sim
            .list_parameters("sim-1", "acme", true, 10, None)
            .await
            .unwrap_err();
        assert_eq!((bad.code, bad.field), ("invalid_input", Some("path")));
    }

    #[tokio::test]
    async fn a_secure_string_shows_its_value_only_when_decrypted() {
        let (sim, calls) = provider(settings(0.0));
        let secure = ParameterSpec {
            kind: ParameterType::SecureString,
            ..spec("/acme/app/password", "hunter2")
        };
        sim.put_parameter(&secure).await.unwrap();
        let hidden = sim
            .parameter("sim-1", "/acme/app/password", false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hidden.kind, ParameterType::SecureString);
        assert_eq!(hidden.value, None);
        assert_eq!(hidden.kms_key_id.as_deref(), Some(DEFAULT_KEY));
        assert_eq!(calls.count("GetParameter", "ok"), 0);
        let shown = sim
            .parameter("sim-1", "/acme/app/password", true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(shown.value.as_deref(), Some("hunter2"));
        assert_eq!(calls.count("GetParameter", "ok"), 1);
        assert!(!format!("{shown:?}").contains("hunter2"));
        let listed = sim
            .list_parameters("sim-1", "/acme", true, 10, None)
            .await
            .unwrap();
        assert_eq!(listed.items[0].value, None);
        // A plain string shows its value either way; a key is for secure strings only.
        sim.put_parameter(&spec("/acme/app/url", "https://x"))
            .await
            .unwrap();
        let plain = sim
            .parameter("sim-1", "/acme/app/url", false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(plain.value.as_deref(), Some("https://x"));
        let keyed = ParameterSpec {
            kms_key_id: Some("alias/mine".into()),
            ..spec("/acme/app/k", "v")
        };
        let error = sim.put_parameter(&keyed).await.unwrap_err();
        assert_eq!(error.field, Some("kms_key_id"));
    }

    #[tokio::test]
    async fn deletes_take_at_most_ten_names_and_answer_the_missing_ones() {
        let (sim, _) = provider(settings(0.0));
        let (_, per_delete) = sim.limits();
        assert_eq!(sim.limits(), (50, 10));
        for i in 0..3 {
            sim.put_parameter(&spec(&format!("/d/p{i}"), "v"))
                .await
                .unwrap();
        }
        let too_many: Vec<String> = (0..=per_delete).map(|i| format!("/d/p{i}")).collect();
        let error = sim.delete_parameters("sim-1", &too_many).await.unwrap_err();
        assert_eq!(
            (error.kind, error.field),
            (Kind::InvalidInput, Some("names"))
        );
        // Nothing was deleted by the refused call.
        let left = sim
            .list_parameters("sim-1", "/d", false, 50, None)
            .await
            .unwrap();
        assert_eq!(left.items.len(), 3);
        let names: Vec<String> = ["/d/p0", "/d/p2", "/d/nope", "/d/p0", "/d/gone"]
            .map(String::from)
            .to_vec();
        let missing = sim.delete_parameters("sim-1", &names).await.unwrap();
        assert_eq!(missing, ["/d/nope", "/d/gone"]);
        let left = sim
            .list_parameters("sim-1", "/d", false, 50, None)
            .await
            .unwrap();
        let left: Vec<_> = left.items.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(left, ["/d/p1"]);
    }

    #[tokio::test]
    async fn names_and_values_follow_ssms_rules() {
        let (sim, _) = provider(settings(0.0));
        for name in [
            "", "/a//b", "/a/", "a/b", "/a b", "/aws/x", "/SSM-x", "ssmthing",
        ] {
            let error = sim.put_parameter(&spec(name, "v")).await.unwrap_err();
            assert_eq!(
                (error.code, error.field),
                ("invalid_input", Some("name")),
                "{name}"
            );
        }
        let deep = format!("{}/leaf", "/l".repeat(15));
        let error = sim.put_parameter(&spec(&deep, "v")).await.unwrap_err();
        assert_eq!(
            error.backend_code.as_deref(),
            Some("HierarchyLevelLimitExceededException")
        );
        sim.put_parameter(&spec("plain", "v")).await.unwrap();
        let empty = sim.put_parameter(&spec("/a/b", "")).await.unwrap_err();
        assert_eq!(empty.field, Some("value"));
        let big = "x".repeat(MAX_VALUE + 1);
        let error = sim.put_parameter(&spec("/a/b", &big)).await.unwrap_err();
        assert_eq!(error.field, Some("value"));
        assert!(!error.message.contains(&big));
    }

    #[tokio::test]
    async fn a_fault_aimed_at_put_parameter_hits_only_it() {
        let (sim, calls) = provider(settings(0.0));
        sim.put_parameter(&spec("/f/a", "1")).await.unwrap();
        sim.set_faults(Faults {
            error_rate: 1.0,
            actions: vec!["PutParameter".into()],
            ..Faults::default()
        });
        let overwrite = ParameterSpec {
            overwrite: true,
            ..spec("/f/a", "2")
        };
        let error = sim.put_parameter(&overwrite).await.unwrap_err();
        assert_eq!(
            (error.kind, error.code, error.backend_code.as_deref()),
            (
                Kind::Unavailable,
                "backend_unavailable",
                Some("InternalServerError")
            )
        );
        assert!(error.message.starts_with("sim PutParameter: "));
        assert_eq!(calls.count("PutParameter", "backend_unavailable"), 1);
        // Refused before it acted: nothing changed, and other calls pass.
        let read = sim
            .parameter("sim-1", "/f/a", false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((read.version, read.value.as_deref()), (1, Some("1")));
        sim.delete_parameters("sim-1", &["/f/a".to_string()])
            .await
            .unwrap();
        // An answer lost after the put took effect: the put happened.
        sim.set_faults(Faults {
            act_then_fail_rate: 1.0,
            actions: vec!["PutParameter".into()],
            ..Faults::default()
        });
        let lost = sim.put_parameter(&spec("/f/b", "1")).await.unwrap_err();
        assert_eq!(lost.code, "backend_timeout");
        sim.set_faults(Faults::default());
        let made = sim.parameter("sim-1", "/f/b", false).await.unwrap();
        assert_eq!(made.unwrap().version, 1);
    }

    #[tokio::test]
    async fn tags_on_a_missing_parameter_are_refused_as_ssm_refuses_them() {
        let (sim, _) = provider(settings(0.0));
        let error = sim
            .set_tags(
                "sim-1",
                ResourceKind::Parameter,
                &["/none".to_string()],
                &tag("a", "1"),
            )
            .await
            .unwrap_err();
        assert_eq!(error.backend_code.as_deref(), Some("InvalidResourceId"));
    }
}
