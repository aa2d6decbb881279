//! Provider settings: each provider owns the keys of its environments' tables and of its
//! entry in a machine type, parses them with its own types, and names every problem by
//! its key, so `config check` can say where it is without knowing the provider.

use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::{CallObserver, Provider};

pub use toml::{Table, Value};

/// One problem in a provider's settings: the key at fault, dotted from the table it sits
/// in (`regions[1]`), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    pub key: String,
    pub message: String,
}

impl SettingProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        SettingProblem {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// What checking a table found: keys the provider does not know, and problems with the
/// ones it does (a type error, a value out of range).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsCheck {
    pub unknown: Vec<String>,
    pub problems: Vec<SettingProblem>,
}

impl SettingsCheck {
    pub fn is_clean(&self) -> bool {
        self.unknown.is_empty() && self.problems.is_empty()
    }
}

/// Parses a settings table as `T`. Unknown keys do not stop the parse; they come back
/// with the value so every one can be reported. A type error is the one problem.
pub fn parse_settings<T: DeserializeOwned>(
    table: &Table,
) -> Result<(T, Vec<String>), SettingProblem> {
    let mut unknown = Vec::new();
    let parsed = serde_ignored::deserialize(Value::Table(table.clone()), |path| {
        unknown.push(path.to_string())
    });
    match parsed {
        Ok(value) => Ok((value, unknown)),
        Err(e) => Err(SettingProblem::new("", e.to_string())),
    }
}

/// Checks a settings table against `T` and then `semantic`, the provider's own rules.
pub fn check_settings<T: DeserializeOwned>(
    table: &Table,
    semantic: impl FnOnce(&T) -> Vec<SettingProblem>,
) -> SettingsCheck {
    match parse_settings::<T>(table) {
        Ok((settings, unknown)) => SettingsCheck {
            unknown,
            problems: semantic(&settings),
        },
        Err(problem) => SettingsCheck {
            unknown: vec![],
            problems: vec![problem],
        },
    }
}

/// What a provider is made from: its environment's name and settings (checked), where it
/// reports its backend calls, and a directory of its own under the server's data dir.
pub struct ProviderContext<'a> {
    pub name: &'a str,
    pub settings: &'a Table,
    pub observer: Arc<dyn CallObserver>,
    pub data_dir: PathBuf,
}

/// One kind of provider a build of overcast has: the name environments give as
/// `provider`, the settings it owns, and how to make one for an environment.
pub trait ProviderFactory: Send + Sync {
    /// The name in config: `aws`, `qemu`, `sim`.
    fn kind(&self) -> &'static str;

    /// The keys an environment of this provider may set besides the common ones.
    fn environment_keys(&self) -> &'static [&'static str];

    /// Checks an environment's settings (its table without the common keys).
    fn check_environment(&self, settings: &Table) -> SettingsCheck;

    /// Checks this provider's entry in a machine type (`[machine_types.X.<kind>]`).
    fn check_machine(&self, machine: &Table) -> SettingsCheck;

    /// Makes the provider of one environment whose settings passed the check.
    fn build(&self, context: ProviderContext<'_>) -> Arc<dyn Provider>;
}

/// The providers of one build, by kind.
pub type ProviderFactories = BTreeMap<&'static str, Arc<dyn ProviderFactory>>;

/// The factories of a list of providers, keyed by their kind.
pub fn factories(list: Vec<Arc<dyn ProviderFactory>>) -> ProviderFactories {
    list.into_iter().map(|f| (f.kind(), f)).collect()
}
