//! What an `aws` environment and a machine type's `aws` entry say in the config: parsed
//! with serde, checked (every problem named by its key), and the factory that makes an
//! [`AwsProvider`] of them. Core sees only the tables.

use overcast_provider::{
    check_settings, parse_settings, LaunchDefaults, LaunchSize, Provider, ProviderContext,
    ProviderError, ProviderErrorKind, ProviderFactory, SettingProblem, SettingsCheck, SizeRequest,
    Table,
};
use serde::Deserialize;
use std::sync::Arc;

use crate::AwsProvider;

/// The settings of an `aws` environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Settings {
    /// The regions the environment spans; the first is the default for creates.
    #[serde(default)]
    pub regions: Vec<String>,
    /// An AWS-compatible endpoint (moto, LocalStack, an S3-compatible store).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// A named profile from the shared config files; default: the default chain.
    #[serde(default)]
    pub profile: Option<String>,
    /// A role to assume, with its external id and session name.
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub session_name: Option<String>,
    /// Defaults for creates that name none.
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub key_pair: Option<String>,
}

/// Every key of [`Settings`], for `config check` to say which provider a key belongs to.
const KEYS: &[&str] = &[
    "regions",
    "endpoint_url",
    "profile",
    "role_arn",
    "external_id",
    "session_name",
    "subnet",
    "security_groups",
    "key_pair",
];

impl Settings {
    fn problems(&self) -> Vec<SettingProblem> {
        let mut problems = Vec::new();
        if self.regions.is_empty() {
            problems.push(SettingProblem::new(
                "regions",
                "an aws environment needs at least one region",
            ));
        }
        for (i, region) in self.regions.iter().enumerate() {
            if !is_region_name(region) {
                problems.push(SettingProblem::new(
                    format!("regions[{i}]"),
                    format!("`{region}` is not a region name like eu-west-1"),
                ));
            }
        }
        if self.external_id.is_some() && self.role_arn.is_none() {
            problems.push(SettingProblem::new(
                "external_id",
                "only makes sense with role_arn",
            ));
        }
        if let Some(url) = &self.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(SettingProblem::new(
                    "endpoint_url",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        problems
    }

    /// The defaults this environment puts into launches that name none.
    pub(crate) fn launch_defaults(&self) -> LaunchDefaults {
        LaunchDefaults {
            key_pair: self.key_pair.clone(),
            security_groups: self.security_groups.clone(),
            subnet: self.subnet.clone(),
        }
    }
}

fn is_region_name(s: &str) -> bool {
    let parts: Vec<_> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// A machine type's `aws` entry: an instance type and, optionally, an image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AwsMachine {
    pub instance_type: String,
    #[serde(default)]
    pub image: Option<String>,
}

impl AwsMachine {
    fn problems(&self) -> Vec<SettingProblem> {
        if self.instance_type.trim().is_empty() {
            vec![SettingProblem::new("instance_type", "must not be empty")]
        } else {
            vec![]
        }
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::InvalidInput, "invalid_input", message).with_field(field)
}

/// Sizes a launch: the request's image and instance type over the machine type's.
pub(crate) fn size_launch(request: &SizeRequest<'_>) -> Result<LaunchSize, ProviderError> {
    if let Some(field) = request.numbers_given().first() {
        return Err(invalid(
            field,
            "sizes in numbers are for provider qemu; give an instance_type",
        ));
    }
    let machine = request.machine_entry::<AwsMachine>("aws")?;
    let image = request
        .image
        .map(str::to_string)
        .or_else(|| machine.as_ref().and_then(|m| m.image.clone()))
        .ok_or_else(|| invalid("image", "give an image, or a machine_type that has one"))?;
    let instance_type = request
        .instance_type
        .map(str::to_string)
        .or_else(|| machine.as_ref().map(|m| m.instance_type.clone()))
        .ok_or_else(|| invalid("instance_type", "give an instance_type, or a machine_type"))?;
    Ok(LaunchSize {
        image,
        instance_type,
        size: None,
    })
}

/// Makes `aws` environments.
pub struct AwsFactory;

impl ProviderFactory for AwsFactory {
    fn kind(&self) -> &'static str {
        "aws"
    }

    fn environment_keys(&self) -> &'static [&'static str] {
        KEYS
    }

    fn check_environment(&self, settings: &Table) -> SettingsCheck {
        check_settings(settings, Settings::problems)
    }

    fn check_machine(&self, machine: &Table) -> SettingsCheck {
        check_settings(machine, AwsMachine::problems)
    }

    fn build(&self, context: ProviderContext<'_>) -> Arc<dyn Provider> {
        // The settings passed the check before any environment is built.
        let settings = parse_settings::<Settings>(context.settings)
            .map(|(settings, _)| settings)
            .unwrap_or_default();
        Arc::new(AwsProvider::new(context.name, settings, context.observer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_settings_is_listed() {
        let mut table = Table::new();
        for key in KEYS {
            let value = match *key {
                "regions" | "security_groups" => toml::Value::Array(vec![]),
                _ => toml::Value::String("x".into()),
            };
            table.insert(key.to_string(), value);
        }
        assert!(AwsFactory.check_environment(&table).unknown.is_empty());
    }

    #[test]
    fn settings_problems_name_their_keys() {
        let table: Table = toml::from_str(
            "regions = [\"eu-west-1\", \"mars\"]\nregionz = []\nexternal_id = \"x\"\n",
        )
        .unwrap();
        let check = AwsFactory.check_environment(&table);
        assert_eq!(check.unknown, ["regionz"]);
        let keys: Vec<_> = check.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["regions[1]", "external_id"]);
    }

    #[test]
    fn launches_are_sized_from_the_request_over_the_machine_type() {
        let entry: Table =
            toml::from_str("instance_type = \"t3.small\"\nimage = \"ami-1\"").unwrap();
        let request = SizeRequest {
            machine_type: Some(("small", Some(&entry))),
            instance_type: Some("t3.large"),
            ..SizeRequest::default()
        };
        let size = size_launch(&request).unwrap();
        assert_eq!(
            (size.image.as_str(), size.instance_type.as_str()),
            ("ami-1", "t3.large")
        );
        let numbers = SizeRequest {
            cpus: Some(2),
            ..SizeRequest::default()
        };
        assert_eq!(size_launch(&numbers).unwrap_err().field, Some("cpus"));
        let none = SizeRequest {
            machine_type: Some(("tiny", None)),
            ..SizeRequest::default()
        };
        assert_eq!(size_launch(&none).unwrap_err().field, Some("machine_type"));
    }
}
