//! `overcast config import-vm-api`: turns the Cloud VM API's environments.json and
//! machinetypes.json into overcast config TOML, and comments out what overcast cannot run.
//!
//! Everything that is emitted as a table has passed the same checks `overcast config check`
//! makes (names, and each provider's own check of its keys), so the output always parses as
//! an overcast config. Whatever is not imported stays in the output as a comment, with its
//! original values and the reason, and is listed in the summary.

use anyhow::{anyhow, Context};
use overcast_provider::{ProviderFactories, SettingProblem, Table, Value as TomlValue};
use overcast_types::validate_name;
use serde_json::{Map, Value as JsonValue};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What the import makes: TOML for the user to paste into overcast.toml, and a summary of
/// what was and was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub toml: String,
    pub summary: String,
}

/// Reads both files and imports them. A file that cannot be read, is not JSON, or has a
/// value of the wrong kind is an error naming the file (and the JSON path of the value).
pub fn import_files(
    environments_path: &Path,
    machine_types_path: &Path,
    providers: &ProviderFactories,
) -> anyhow::Result<Imported> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the file", path.display()))
    };
    let environments = parse_environments(
        &environments_path.display().to_string(),
        &read(environments_path)?,
    )?;
    let machine_types = parse_machine_types(
        &machine_types_path.display().to_string(),
        &read(machine_types_path)?,
    )?;
    Ok(import(&environments, &machine_types, providers))
}

/// The keys of an environments.json entry besides `name` and `cloud`, in the order the
/// Cloud VM API documents them. All are strings.
const ENVIRONMENT_SETTINGS: [&str; 8] = [
    "url",
    "region",
    "network_id",
    "vpc_id",
    "project",
    "storage_external_id",
    "account_id",
    "subscription_id",
];

/// One entry of environments.json. A key that is absent or null reads as an empty string,
/// as the Cloud VM API's Go structs read it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VmApiEnvironment {
    name: String,
    cloud: String,
    /// The value of each of [`ENVIRONMENT_SETTINGS`], in that order.
    settings: Vec<(&'static str, String)>,
}

impl VmApiEnvironment {
    fn setting(&self, key: &str) -> &str {
        self.settings
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, value)| value.as_str())
    }
}

/// One machine type of machinetypes.json: its `os` block and its entry per cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VmApiMachineType {
    os_type: String,
    os_distribution: String,
    /// Zero when unset: the Cloud VM API then leaves the disk at the image's size.
    os_disk_size_gb: i64,
    /// By the cloud key as written in the file (`Aws`, `Azure`, ...).
    clouds: BTreeMap<String, VmApiCloudEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct VmApiCloudEntry {
    instance_type: String,
    image: String,
}

/// A value of the wrong kind, at its JSON path (`[2].cloud`, `small-debian.clouds.Aws`).
#[derive(Debug)]
struct ShapeError {
    path: String,
    message: String,
}

impl ShapeError {
    fn expected(path: &str, what: &str, found: &JsonValue) -> Self {
        ShapeError {
            path: path.to_string(),
            message: format!("expected {what}, found {}", describe(found)),
        }
    }

    /// The error of the file `file_name`, as the command prints it.
    fn in_file(self, file_name: &str) -> anyhow::Error {
        if self.path.is_empty() {
            anyhow!("{file_name}: {}", self.message)
        } else {
            anyhow!("{file_name}: {}: {}", self.path, self.message)
        }
    }
}

/// A JSON value's kind, for error messages; short scalars are shown.
fn describe(value: &JsonValue) -> String {
    match value {
        JsonValue::Null => "null".into(),
        JsonValue::Bool(b) => format!("boolean {b}"),
        JsonValue::Number(n) => format!("number {n}"),
        JsonValue::String(s) => format!("string {s:?}"),
        JsonValue::Array(_) => "an array".into(),
        JsonValue::Object(_) => "an object".into(),
    }
}

/// `parent.key`, or `key` at the top of a file.
fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A field of a JSON object, its key matched as Go's encoding/json matches struct fields:
/// the exact key first, else any key equal to it ignoring case.
fn field<'a>(object: &'a Map<String, JsonValue>, key: &str) -> Option<&'a JsonValue> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    })
}

/// A string field; absent or null is empty, as it is to the Cloud VM API.
fn string_field(
    object: &Map<String, JsonValue>,
    key: &str,
    path: &str,
) -> Result<String, ShapeError> {
    match field(object, key) {
        None | Some(JsonValue::Null) => Ok(String::new()),
        Some(JsonValue::String(s)) => Ok(s.clone()),
        Some(other) => Err(ShapeError::expected(
            &child_path(path, key),
            "a string",
            other,
        )),
    }
}

/// An object; null is an empty one, as Go leaves a struct or map empty for null.
fn as_object<'a>(
    value: &'a JsonValue,
    path: &str,
    what: &str,
) -> Result<Option<&'a Map<String, JsonValue>>, ShapeError> {
    match value {
        JsonValue::Null => Ok(None),
        JsonValue::Object(object) => Ok(Some(object)),
        other => Err(ShapeError::expected(path, what, other)),
    }
}

fn parse_json(file_name: &str, text: &str) -> anyhow::Result<JsonValue> {
    serde_json::from_str(text).map_err(|e| anyhow!("{file_name}: not valid JSON: {e}"))
}

/// Reads environments.json: an array of objects with string fields.
fn parse_environments(file_name: &str, text: &str) -> anyhow::Result<Vec<VmApiEnvironment>> {
    let document = parse_json(file_name, text)?;
    let read = || -> Result<Vec<VmApiEnvironment>, ShapeError> {
        let JsonValue::Array(entries) = &document else {
            return Err(ShapeError::expected(
                "",
                "an array of environments",
                &document,
            ));
        };
        let mut environments = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let path = format!("[{index}]");
            let Some(object) = as_object(entry, &path, "an environment object")? else {
                continue;
            };
            let mut settings = Vec::with_capacity(ENVIRONMENT_SETTINGS.len());
            for key in ENVIRONMENT_SETTINGS {
                settings.push((key, string_field(object, key, &path)?));
            }
            environments.push(VmApiEnvironment {
                name: string_field(object, "name", &path)?,
                cloud: string_field(object, "cloud", &path)?,
                settings,
            });
        }
        Ok(environments)
    };
    read().map_err(|e| e.in_file(file_name))
}

/// Reads machinetypes.json: an object of machine types by name.
fn parse_machine_types(
    file_name: &str,
    text: &str,
) -> anyhow::Result<BTreeMap<String, VmApiMachineType>> {
    let document = parse_json(file_name, text)?;
    let read = || -> Result<BTreeMap<String, VmApiMachineType>, ShapeError> {
        let Some(types) = as_object(&document, "", "an object of machine types by name")? else {
            return Ok(BTreeMap::new());
        };
        let mut machine_types = BTreeMap::new();
        for (name, entry) in types {
            let machine_type = match as_object(entry, name, "a machine type object")? {
                Some(object) => parse_machine_type(object, name)?,
                None => VmApiMachineType {
                    os_type: String::new(),
                    os_distribution: String::new(),
                    os_disk_size_gb: 0,
                    clouds: BTreeMap::new(),
                },
            };
            machine_types.insert(name.clone(), machine_type);
        }
        Ok(machine_types)
    };
    read().map_err(|e| e.in_file(file_name))
}

fn parse_machine_type(
    object: &Map<String, JsonValue>,
    path: &str,
) -> Result<VmApiMachineType, ShapeError> {
    let os_path = child_path(path, "os");
    let os = match field(object, "os") {
        Some(value) => as_object(value, &os_path, "an object")?,
        None => None,
    };
    let empty = Map::new();
    let os = os.unwrap_or(&empty);
    let disk_path = child_path(&os_path, "os_disk_size_gb");
    let os_disk_size_gb = match field(os, "os_disk_size_gb") {
        None | Some(JsonValue::Null) => 0,
        Some(value) => value
            .as_i64()
            .ok_or_else(|| ShapeError::expected(&disk_path, "a whole number", value))?,
    };
    let clouds_path = child_path(path, "clouds");
    let clouds = match field(object, "clouds") {
        Some(value) => as_object(value, &clouds_path, "an object of entries by cloud")?,
        None => None,
    };
    let mut entries = BTreeMap::new();
    for (cloud, entry) in clouds.unwrap_or(&empty) {
        let entry_path = child_path(&clouds_path, cloud);
        let entry = as_object(entry, &entry_path, "an object")?.unwrap_or(&empty);
        entries.insert(
            cloud.clone(),
            VmApiCloudEntry {
                instance_type: string_field(entry, "instance_type", &entry_path)?,
                image: string_field(entry, "image", &entry_path)?,
            },
        );
    }
    Ok(VmApiMachineType {
        os_type: string_field(os, "os_type", &os_path)?,
        os_distribution: string_field(os, "os_distribution", &os_path)?,
        os_disk_size_gb,
        clouds: entries,
    })
}

/// The overcast provider kind a Cloud VM API cloud maps to. The Cloud VM API matches cloud
/// names case-sensitively; a user moving to overcast means the same cloud whatever the case.
fn provider_kind(cloud: &str) -> Result<&'static str, String> {
    match cloud.to_ascii_lowercase().as_str() {
        "aws" => Ok("aws"),
        "local" | "qemu" => Ok("qemu"),
        "proxmox" => Ok("proxmox"),
        "" => Err("it names no cloud".into()),
        other => Err(format!("overcast has no {other} provider yet")),
    }
}

/// `(cloud X)`, or `(no cloud)` when the entry names none.
fn cloud_label(cloud: &str) -> String {
    if cloud.is_empty() {
        "no cloud".into()
    } else {
        format!("cloud {cloud}")
    }
}

/// A TOML key: bare when it can be, else quoted (a name with a dot would otherwise be read
/// as a dotted key).
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        key.to_string()
    } else {
        TomlValue::from(key).to_string()
    }
}

/// `key = value, key = value`: the pairs as TOML assignments on one line.
fn assignments(pairs: &[(&str, TomlValue)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{} = {value}", toml_key(key)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The non-empty string pairs, as TOML values.
fn non_empty<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<(&'a str, TomlValue)> {
    pairs
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| (key, TomlValue::from(value)))
        .collect()
}

fn as_table(pairs: &[(&str, TomlValue)]) -> Table {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.clone()))
        .collect()
}

/// Control characters written as escapes: a TOML comment must stay on one line and hold
/// none, and a summary line should stay one line too.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// A TOML comment line.
fn comment(text: &str) -> String {
    format!("# {}", one_line(text))
}

/// The problems a provider's check finds in a table it would be given, in one sentence;
/// `None` when there are none.
fn check_problems(problems: Vec<SettingProblem>) -> Option<String> {
    let described: Vec<String> = problems
        .into_iter()
        .map(|p| {
            if p.key.is_empty() {
                p.message
            } else {
                format!("{}: {}", p.key, p.message)
            }
        })
        .collect();
    (!described.is_empty()).then(|| described.join("; "))
}

/// What the import has made so far.
#[derive(Default)]
struct Output {
    /// Blocks of TOML lines, one per environment or machine type.
    blocks: Vec<Vec<String>>,
    imported_environments: Vec<String>,
    imported_machine_types: Vec<String>,
    /// One line for each thing not imported: an environment, a machine type, or one cloud
    /// of a machine type.
    not_imported: Vec<String>,
}

impl Output {
    /// Records `what` as not imported, and answers the comment that says so.
    fn report_not_imported(&mut self, what: &str, reason: &str) -> String {
        self.not_imported
            .push(one_line(&format!("not imported: {what}: {reason}")));
        comment(&format!("{what} is not imported: {reason}"))
    }
}

/// Imports parsed files: environments in file order, machine types by name.
fn import(
    environments: &[VmApiEnvironment],
    machine_types: &BTreeMap<String, VmApiMachineType>,
    providers: &ProviderFactories,
) -> Imported {
    let mut output = Output::default();
    let mut seen = BTreeSet::new();
    for environment in environments {
        import_environment(&mut output, environment, &mut seen, providers);
    }
    for (name, machine_type) in machine_types {
        import_machine_type(&mut output, name, machine_type, providers);
    }

    let mut toml = String::from(
        "# Imported from the Cloud VM API's environments.json and machinetypes.json.\n\
         # Paste into overcast.toml and check it with `overcast config check`.\n",
    );
    for block in &output.blocks {
        toml.push('\n');
        for line in block {
            toml.push_str(line);
            toml.push('\n');
        }
    }

    let count = |what: &str, imported: &[String], of: usize| {
        let mut line = format!("imported {} of {of} {what}", imported.len());
        if !imported.is_empty() {
            line.push_str(": ");
            line.push_str(&imported.join(", "));
        }
        line.push('\n');
        line
    };
    let mut summary = count(
        "environments",
        &output.imported_environments,
        environments.len(),
    );
    summary.push_str(&count(
        "machine types",
        &output.imported_machine_types,
        machine_types.len(),
    ));
    for line in &output.not_imported {
        summary.push_str(line);
        summary.push('\n');
    }
    Imported { toml, summary }
}

fn import_environment(
    output: &mut Output,
    environment: &VmApiEnvironment,
    seen: &mut BTreeSet<String>,
    providers: &ProviderFactories,
) {
    let what = format!(
        "environment {:?} ({})",
        environment.name,
        cloud_label(&environment.cloud)
    );
    // The Cloud VM API answers for the first environment of a name; TOML allows one table.
    let first_of_its_name = seen.insert(environment.name.clone());
    let table = if first_of_its_name {
        environment_table(environment, providers)
    } else {
        Err("an earlier environment has this name, and the Cloud VM API uses the first".into())
    };
    match table {
        Ok(lines) => {
            output.imported_environments.push(environment.name.clone());
            output.blocks.push(lines);
        }
        Err(reason) => {
            let mut lines = vec![output.report_not_imported(&what, &reason)];
            let original = non_empty(
                std::iter::once(("cloud", environment.cloud.as_str())).chain(
                    environment
                        .settings
                        .iter()
                        .map(|(key, value)| (*key, value.as_str())),
                ),
            );
            if !original.is_empty() {
                lines.push(comment(&format!("  {}", assignments(&original))));
            }
            output.blocks.push(lines);
        }
    }
}

/// The `[environments.NAME]` table of an environment overcast can run, or why it cannot.
fn environment_table(
    environment: &VmApiEnvironment,
    providers: &ProviderFactories,
) -> Result<Vec<String>, String> {
    validate_name("name", &environment.name).map_err(|e| e.message)?;
    let kind = provider_kind(&environment.cloud)?;
    let factory = providers
        .get(kind)
        .ok_or_else(|| format!("this build of overcast has no {kind} provider"))?;

    let mut notes = Vec::new();
    let mut settings: Vec<(&str, TomlValue)> = Vec::new();
    // The keys whose meaning the table carries; any other one that is set is listed.
    let mut carried: &[&str] = &[];
    if kind == "aws" {
        carried = &["region", "network_id", "vpc_id"];
        let region = environment.setting("region");
        let regions = if region.is_empty() {
            vec![]
        } else {
            vec![TomlValue::from(region)]
        };
        settings.push(("regions", TomlValue::Array(regions)));
        let subnet = environment.setting("network_id");
        if !subnet.is_empty() {
            settings.push(("subnet", TomlValue::from(subnet)));
        }
        let vpc = environment.setting("vpc_id");
        if !vpc.is_empty() {
            notes.push(comment(&format!(
                "vpc_id {vpc:?} is not needed: overcast launches into the subnet, which lies in one VPC."
            )));
        }
        notes.push(comment(
            "Credentials come from the AWS default chain, or a profile or role_arn set here; never from the request.",
        ));
    }
    if kind == "proxmox" {
        carried = &["url", "region", "vpc_id", "storage_external_id"];
        settings.push(("url", TomlValue::from(environment.setting("url"))));
        // The Cloud VM API took the cluster's credentials in every request; overcast keeps
        // its own, so the import names where they go. Each fails closed until it is there.
        let secret_env = format!(
            "OVERCAST_{}_SECRET",
            environment
                .name
                .to_ascii_uppercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        let ca_file = format!("/etc/overcast/{}-ca.pem", environment.name);
        notes.push(comment(&format!(
            "The Cloud VM API took the cluster's credentials in every request; overcast keeps its own. Make it an API token (`pveum user token add overcast@pve overcast`), put the token's secret in {secret_env} and the cluster's CA certificate in {ca_file} (or give its fingerprint instead of ca_file)."
        )));
        settings.push(("ca_file", TomlValue::from(ca_file)));
        settings.push(("token_id", TomlValue::from("overcast@pve!overcast")));
        settings.push(("secret_env", TomlValue::from(secret_env)));
        // `node/pve` names the node the Cloud VM API created VMs on; `storage/pve/local-lvm`
        // the storage of their disks.
        if let Some(node) = environment.setting("vpc_id").strip_prefix("node/") {
            settings.push(("node", TomlValue::from(node)));
        }
        let storage = environment.setting("storage_external_id");
        if let Some(storage) = storage
            .strip_prefix("storage/")
            .and_then(|s| s.rsplit('/').next())
        {
            settings.push(("storage", TomlValue::from(storage)));
        }
    }
    if let Some(problems) = check_problems(factory.check_environment(&as_table(&settings)).problems)
    {
        return Err(problems);
    }
    let left_over = non_empty(
        environment
            .settings
            .iter()
            .filter(|(key, _)| !carried.contains(key))
            .map(|(key, value)| (*key, value.as_str())),
    );
    if !left_over.is_empty() {
        notes.push(comment(&format!(
            "Not carried over, overcast's {kind} provider has no use for them: {}",
            assignments(&left_over)
        )));
    }

    let description = format!(
        "imported from the Cloud VM API ({})",
        cloud_label(&environment.cloud)
    );
    let mut lines = vec![format!("[environments.{}]", toml_key(&environment.name))];
    lines.extend(notes);
    lines.push(format!("provider = {}", TomlValue::from(kind)));
    lines.push(format!("description = {}", TomlValue::from(description)));
    lines.extend(
        settings
            .iter()
            .map(|(key, value)| format!("{} = {value}", toml_key(key))),
    );
    Ok(lines)
}

fn import_machine_type(
    output: &mut Output,
    name: &str,
    machine_type: &VmApiMachineType,
    providers: &ProviderFactories,
) {
    let what = format!("machine type {name:?}");
    // Each cloud's entry, or why it is not imported; the first spelling of a provider wins.
    let mut entries: Vec<(&str, String)> = Vec::new();
    let mut skipped: Vec<(&str, String)> = Vec::new();
    for (cloud, entry) in &machine_type.clouds {
        match machine_entry(cloud, entry, machine_type, providers) {
            Ok((kind, _)) if entries.iter().any(|(k, _)| *k == kind) => skipped.push((
                cloud,
                format!("an earlier cloud of this machine type is also {kind}"),
            )),
            Ok(entry) => entries.push(entry),
            Err(reason) => skipped.push((cloud, reason)),
        }
    }
    let original = |cloud: &str| {
        let entry = &machine_type.clouds[cloud];
        assignments(&non_empty([
            ("instance_type", entry.instance_type.as_str()),
            ("image", entry.image.as_str()),
        ]))
    };

    let whole_reason = match validate_name("name", name) {
        Err(e) => Some(e.message),
        Ok(()) if entries.is_empty() => Some(if machine_type.clouds.is_empty() {
            "it lists no clouds".to_string()
        } else {
            "none of its clouds maps to an overcast provider".to_string()
        }),
        Ok(()) => None,
    };
    let mut lines = Vec::new();
    match whole_reason {
        Some(reason) => {
            lines.push(output.report_not_imported(&what, &reason));
            let mut os = non_empty([
                ("os_type", machine_type.os_type.as_str()),
                ("os_distribution", machine_type.os_distribution.as_str()),
            ]);
            if machine_type.os_disk_size_gb != 0 {
                os.push((
                    "os_disk_size_gb",
                    TomlValue::from(machine_type.os_disk_size_gb),
                ));
            }
            if !os.is_empty() {
                lines.push(comment(&format!("  os: {}", assignments(&os))));
            }
            for cloud in machine_type.clouds.keys() {
                lines.push(comment(&format!("  cloud {cloud}: {}", original(cloud))));
            }
            for (cloud, reason) in &skipped {
                output
                    .not_imported
                    .push(one_line(&format!("  cloud {cloud}: {reason}")));
            }
        }
        None => {
            output.imported_machine_types.push(name.to_string());
            lines.push(format!("[machine_types.{}]", toml_key(name)));
            if let Some(description) = machine_description(machine_type) {
                lines.push(format!("description = {}", TomlValue::from(description)));
            }
            for (kind, inline_table) in &entries {
                lines.push(format!("{kind} = {inline_table}"));
            }
            for (cloud, reason) in &skipped {
                lines.push(output.report_not_imported(&format!("{what} cloud {cloud}"), reason));
                let values = original(cloud);
                if !values.is_empty() {
                    lines.push(comment(&format!("  {values}")));
                }
            }
        }
    }
    output.blocks.push(lines);
}

/// `Debian (Linux)` from the machine type's `os`, or as much of it as is there.
fn machine_description(machine_type: &VmApiMachineType) -> Option<String> {
    match (
        machine_type.os_distribution.as_str(),
        machine_type.os_type.as_str(),
    ) {
        ("", "") => None,
        (distribution, "") => Some(distribution.to_string()),
        ("", os_type) => Some(os_type.to_string()),
        (distribution, os_type) => Some(format!("{distribution} ({os_type})")),
    }
}

/// One cloud's entry as the provider's inline table (`{ instance_type = .., image = .. }`),
/// with the provider's kind; or why it cannot be one.
fn machine_entry(
    cloud: &str,
    entry: &VmApiCloudEntry,
    machine_type: &VmApiMachineType,
    providers: &ProviderFactories,
) -> Result<(&'static str, String), String> {
    let kind = provider_kind(cloud)?;
    let factory = providers
        .get(kind)
        .ok_or_else(|| format!("this build of overcast has no {kind} provider"))?;
    let mut pairs: Vec<(&str, TomlValue)> = Vec::new();
    if kind == "aws" {
        pairs.push((
            "instance_type",
            TomlValue::from(entry.instance_type.as_str()),
        ));
    } else if kind == "proxmox" {
        // The Cloud VM API meant N CPUs and M GB (its own parse loses the CPUs); overcast
        // clones a template, so an installer ISO cannot stand in for one.
        let (cpus, memory_gb) = parse_cpus_memory(&entry.instance_type).ok_or_else(|| {
            format!(
                "instance_type {:?} is not of the form c<cpus>m<GB of memory>, e.g. c2m4",
                entry.instance_type
            )
        })?;
        if entry.image.is_empty() || entry.image.contains(":iso/") {
            return Err(format!(
                "image {:?} is not a template: overcast makes Proxmox VMs by cloning a template, so name one (by VM id or name) as this entry's template",
                entry.image
            ));
        }
        pairs.push(("cores", TomlValue::from(cpus)));
        pairs.push(("memory_mb", TomlValue::from(i64::from(memory_gb) * 1024)));
        if machine_type.os_disk_size_gb > 0 {
            pairs.push(("disk_gb", TomlValue::from(machine_type.os_disk_size_gb)));
        }
        pairs.push(("template", TomlValue::from(entry.image.as_str())));
    } else {
        let (cpus, memory_gb) = parse_cpus_memory(&entry.instance_type).ok_or_else(|| {
            format!(
                "instance_type {:?} is not of the form c<cpus>m<GB of memory>, e.g. c2m4",
                entry.instance_type
            )
        })?;
        if machine_type.os_disk_size_gb <= 0 {
            let disk = match machine_type.os_disk_size_gb {
                0 => "not set".to_string(),
                gb => gb.to_string(),
            };
            return Err(format!(
                "os.os_disk_size_gb is {disk}, and a qemu machine needs a disk of at least 1 GB"
            ));
        }
        pairs.push(("cpus", TomlValue::from(cpus)));
        pairs.push(("memory_mb", TomlValue::from(i64::from(memory_gb) * 1024)));
        pairs.push(("disk_gb", TomlValue::from(machine_type.os_disk_size_gb)));
    }
    if kind != "proxmox" && !entry.image.is_empty() {
        pairs.push(("image", TomlValue::from(entry.image.as_str())));
    }
    if let Some(problems) = check_problems(factory.check_machine(&as_table(&pairs)).problems) {
        return Err(problems);
    }
    Ok((kind, format!("{{ {} }}", assignments(&pairs))))
}

/// CPUs and GB of memory from `c<cpus>m<GB>`, the form the Cloud VM API reads for
/// Proxmox. Like its pattern, it may follow a family prefix (`ecs.g1.c2m4`).
fn parse_cpus_memory(instance_type: &str) -> Option<(u32, u32)> {
    let size = instance_type.rsplit('.').next()?;
    let (cpus, memory_gb) = size.strip_prefix('c')?.split_once('m')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !(digits(cpus) && digits(memory_gb)) {
        return None;
    }
    Some((cpus.parse().ok()?, memory_gb.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers;
    use overcast_core::config::Config;

    /// The environments.json example of the Cloud VM API's README, as the contract quotes it.
    const ENVIRONMENTS: &str = r#"[
  {"name": "aws-test1", "cloud": "Aws", "url": "", "region": "eu-west-3",
   "network_id": "subnet-0e5fbdb1ac4a8dead", "vpc_id": "vpc-09ece8e3b2134782f"},
  {"name": "azure-test1", "cloud": "Azure", "url": "AzurePublicCloud", "region": "Azure-int/westeurope",
   "network_id": "/subscriptions/…/subnets/first-subnet", "vpc_id": "<tenant id>/<subscription id>", "project": "oj-test"},
  {"name": "pve-test1", "cloud": "Proxmox", "url": "https://192.168.8.136:8006", "region": "Proxmox/1",
   "network_id": "", "storage_external_id": "storage/pve/local-lvm", "vpc_id": "node/pve"}
]"#;

    const MACHINE_TYPES: &str = r#"{
  "small-debian": {
    "os": {"os_type": "Linux", "os_distribution": "Debian", "os_disk_size_gb": 50},
    "clouds": {
      "Aws":     {"instance_type": "t2.micro",     "image": "ami-0644165ab979df02d"},
      "Azure":   {"instance_type": "Standard_B1s", "image": "Debian/debian-12/12-gen2/latest"},
      "Proxmox": {"instance_type": "ecs.g1.c1m1",  "image": "local:iso/debian12.iso"}
    }
  },
  "medium-debian": {"os": {"os_type": "Linux", "os_distribution": "Debian"},
                    "clouds": {"Aws": {"instance_type": "t3.medium", "image": "ami-0644165ab979df02d"}, "…": {}}}
}"#;

    fn run(environments: &str, machine_types: &str) -> Imported {
        let environments = parse_environments("environments.json", environments).unwrap();
        let machine_types = parse_machine_types("machinetypes.json", machine_types).unwrap();
        import(&environments, &machine_types, &providers())
    }

    /// The output as overcast reads it: every import must be a valid config.
    fn config_of(imported: &Imported) -> Config {
        Config::parse("imported.toml", &imported.toml, &providers())
            .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml))
    }

    fn environments_error(text: &str) -> String {
        format!(
            "{:#}",
            parse_environments("environments.json", text).unwrap_err()
        )
    }

    fn machine_types_error(text: &str) -> String {
        format!(
            "{:#}",
            parse_machine_types("machinetypes.json", text).unwrap_err()
        )
    }

    #[test]
    fn the_contract_examples_import_aws_and_comment_out_the_rest() {
        let imported = run(ENVIRONMENTS, MACHINE_TYPES);
        assert_eq!(
            imported.toml,
            r#"# Imported from the Cloud VM API's environments.json and machinetypes.json.
# Paste into overcast.toml and check it with `overcast config check`.

[environments.aws-test1]
# vpc_id "vpc-09ece8e3b2134782f" is not needed: overcast launches into the subnet, which lies in one VPC.
# Credentials come from the AWS default chain, or a profile or role_arn set here; never from the request.
provider = "aws"
description = "imported from the Cloud VM API (cloud Aws)"
regions = ["eu-west-3"]
subnet = "subnet-0e5fbdb1ac4a8dead"

# environment "azure-test1" (cloud Azure) is not imported: overcast has no azure provider yet
#   cloud = "Azure", url = "AzurePublicCloud", region = "Azure-int/westeurope", network_id = "/subscriptions/…/subnets/first-subnet", vpc_id = "<tenant id>/<subscription id>", project = "oj-test"

[environments.pve-test1]
# The Cloud VM API took the cluster's credentials in every request; overcast keeps its own. Make it an API token (`pveum user token add overcast@pve overcast`), put the token's secret in OVERCAST_PVE_TEST1_SECRET and the cluster's CA certificate in /etc/overcast/pve-test1-ca.pem (or give its fingerprint instead of ca_file).
provider = "proxmox"
description = "imported from the Cloud VM API (cloud Proxmox)"
url = "https://192.168.8.136:8006"
ca_file = "/etc/overcast/pve-test1-ca.pem"
token_id = "overcast@pve!overcast"
secret_env = "OVERCAST_PVE_TEST1_SECRET"
node = "pve"
storage = "local-lvm"

[machine_types.medium-debian]
description = "Debian (Linux)"
aws = { instance_type = "t3.medium", image = "ami-0644165ab979df02d" }
# machine type "medium-debian" cloud … is not imported: overcast has no … provider yet

[machine_types.small-debian]
description = "Debian (Linux)"
aws = { instance_type = "t2.micro", image = "ami-0644165ab979df02d" }
# machine type "small-debian" cloud Azure is not imported: overcast has no azure provider yet
#   instance_type = "Standard_B1s", image = "Debian/debian-12/12-gen2/latest"
# machine type "small-debian" cloud Proxmox is not imported: image "local:iso/debian12.iso" is not a template: overcast makes Proxmox VMs by cloning a template, so name one (by VM id or name) as this entry's template
#   instance_type = "ecs.g1.c1m1", image = "local:iso/debian12.iso"
"#
        );
        assert_eq!(
            imported.summary,
            "imported 2 of 3 environments: aws-test1, pve-test1
imported 2 of 2 machine types: medium-debian, small-debian
not imported: environment \"azure-test1\" (cloud Azure): overcast has no azure provider yet
not imported: machine type \"medium-debian\" cloud …: overcast has no … provider yet
not imported: machine type \"small-debian\" cloud Azure: overcast has no azure provider yet
not imported: machine type \"small-debian\" cloud Proxmox: image \"local:iso/debian12.iso\" is not a template: overcast makes Proxmox VMs by cloning a template, so name one (by VM id or name) as this entry's template
"
        );
        let config = config_of(&imported);
        let aws = &config.environments["aws-test1"];
        assert_eq!(aws.provider, "aws");
        assert_eq!(aws.settings["regions"].as_array().unwrap().len(), 1);
        assert_eq!(
            aws.settings["subnet"].as_str(),
            Some("subnet-0e5fbdb1ac4a8dead")
        );
        assert_eq!(config.environments.len(), 2);
        assert_eq!(config.environments["pve-test1"].provider, "proxmox");
        assert_eq!(
            config.machine_types["small-debian"].sizes["aws"]["instance_type"].as_str(),
            Some("t2.micro")
        );
    }

    #[test]
    fn cloud_names_match_whatever_their_case() {
        let imported = run(
            r#"[{"name": "a", "cloud": "aws", "region": "eu-west-1"},
                {"name": "b", "cloud": "AWS", "region": "us-east-1"}]"#,
            r#"{"t": {"clouds": {"aWs": {"instance_type": "t3.small"}}}}"#,
        );
        let config = config_of(&imported);
        assert_eq!(config.environments["a"].provider, "aws");
        assert_eq!(config.environments["b"].provider, "aws");
        assert_eq!(
            config.machine_types["t"].sizes["aws"]["instance_type"].as_str(),
            Some("t3.small")
        );
        assert!(imported
            .summary
            .starts_with("imported 2 of 2 environments: a, b\n"));
    }

    #[test]
    fn every_other_cloud_is_kept_as_a_comment() {
        let imported = run(
            r#"[{"name": "n", "cloud": "Nutanix", "url": "https://pc:9440"},
                {"name": "v", "cloud": "VMware"},
                {"name": "x"}]"#,
            "{}",
        );
        for line in [
            "# environment \"n\" (cloud Nutanix) is not imported: overcast has no nutanix provider yet\n#   cloud = \"Nutanix\", url = \"https://pc:9440\"\n",
            "# environment \"v\" (cloud VMware) is not imported: overcast has no vmware provider yet\n#   cloud = \"VMware\"\n",
            "# environment \"x\" (no cloud) is not imported: it names no cloud\n",
        ] {
            assert!(imported.toml.contains(line), "{}", imported.toml);
        }
        assert!(imported
            .summary
            .starts_with("imported 0 of 3 environments\n"));
        assert_eq!(
            imported
                .summary
                .matches("not imported: environment")
                .count(),
            3
        );
        assert!(config_of(&imported).environments.is_empty());
    }

    #[test]
    fn a_name_overcast_refuses_is_reported_not_emitted() {
        let imported = run(
            r#"[{"name": "AWS Prod", "cloud": "Aws", "region": "eu-west-1"}]"#,
            r#"{"Big_One": {"clouds": {"Aws": {"instance_type": "m5.large"}}}}"#,
        );
        assert!(
            imported.toml.contains(
                "# environment \"AWS Prod\" (cloud Aws) is not imported: `AWS Prod` is not a valid name"
            ),
            "{}",
            imported.toml
        );
        assert!(imported
            .toml
            .contains("# machine type \"Big_One\" is not imported: `Big_One` is not a valid name"));
        assert!(imported
            .toml
            .contains("#   cloud Aws: instance_type = \"m5.large\"\n"));
        assert!(!imported.toml.contains("[environments"));
        assert!(!imported.toml.contains("[machine_types"));
        assert_eq!(imported.summary.matches("is not a valid name").count(), 2);
        config_of(&imported);
    }

    #[test]
    fn a_second_environment_of_a_name_is_not_imported() {
        let imported = run(
            r#"[{"name": "e", "cloud": "Aws", "region": "eu-west-1"},
                {"name": "e", "cloud": "Aws", "region": "eu-west-2"}]"#,
            "{}",
        );
        let config = config_of(&imported);
        assert_eq!(
            config.environments["e"].settings["regions"][0].as_str(),
            Some("eu-west-1")
        );
        assert!(imported.summary.contains(
            "not imported: environment \"e\" (cloud Aws): an earlier environment has this name"
        ));
    }

    #[test]
    fn an_aws_environment_overcast_would_refuse_is_not_imported() {
        let imported = run(
            r#"[{"name": "no-region", "cloud": "Aws"},
                {"name": "odd-region", "cloud": "Aws", "region": "Aws/eu-west-3"}]"#,
            "{}",
        );
        assert!(imported.summary.contains(
            "environment \"no-region\" (cloud Aws): regions: an aws environment needs at least one region"
        ), "{}", imported.summary);
        assert!(imported.summary.contains(
            "environment \"odd-region\" (cloud Aws): regions[0]: `Aws/eu-west-3` is not a region name like eu-west-1"
        ), "{}", imported.summary);
        assert!(config_of(&imported).environments.is_empty());
    }

    #[test]
    fn fields_no_aws_environment_uses_are_listed_and_a_missing_subnet_is_left_out() {
        let imported = run(
            r#"[{"name": "e", "cloud": "Aws", "region": "eu-west-1", "project": "p", "url": "ChinaCloud"}]"#,
            "{}",
        );
        assert!(imported.toml.contains(
            "# Not carried over, overcast's aws provider has no use for them: url = \"ChinaCloud\", project = \"p\"\n"
        ), "{}", imported.toml);
        assert!(!imported.toml.contains("vpc_id"));
        let config = config_of(&imported);
        assert!(!config.environments["e"].settings.contains_key("subnet"));
    }

    #[test]
    fn a_local_cloud_becomes_a_qemu_size() {
        let imported = run(
            r#"[{"name": "here", "cloud": "Local"}]"#,
            r#"{"small": {"os": {"os_disk_size_gb": 20},
                          "clouds": {"Local": {"instance_type": "c2m4", "image": "debian-12"}}},
                "family": {"os": {"os_disk_size_gb": 8},
                           "clouds": {"qemu": {"instance_type": "ecs.g1.c1m1"}}}}"#,
        );
        assert!(imported.toml.contains(
            "qemu = { cpus = 2, memory_mb = 4096, disk_gb = 20, image = \"debian-12\" }\n"
        ));
        assert!(imported
            .toml
            .contains("qemu = { cpus = 1, memory_mb = 1024, disk_gb = 8 }\n"));
        let config = config_of(&imported);
        assert_eq!(config.environments["here"].provider, "qemu");
        assert_eq!(
            config.machine_types["small"].sizes["qemu"]["memory_mb"].as_integer(),
            Some(4096)
        );
    }

    #[test]
    fn a_proxmox_cloud_becomes_cores_memory_and_a_template() {
        let imported = run(
            r#"[{"name": "pve", "cloud": "Proxmox", "url": "https://pve.example:8006",
                 "vpc_id": "node/pve2", "storage_external_id": "storage/pve2/ceph"}]"#,
            r#"{"small": {"os": {"os_disk_size_gb": 50},
                          "clouds": {"Proxmox": {"instance_type": "ecs.g1.c2m4", "image": "debian-12"}}},
                "tiny": {"clouds": {"Proxmox": {"instance_type": "c1m1", "image": "9000"}}}}"#,
        );
        // The Cloud VM API's own parse made the CPUs 0; what it meant is imported.
        assert!(imported.toml.contains(
            "proxmox = { cores = 2, memory_mb = 4096, disk_gb = 50, template = \"debian-12\" }\n"
        ), "{}", imported.toml);
        assert!(
            imported
                .toml
                .contains("proxmox = { cores = 1, memory_mb = 1024, template = \"9000\" }\n"),
            "{}",
            imported.toml
        );
        let config = config_of(&imported);
        let pve = &config.environments["pve"];
        assert_eq!(pve.provider, "proxmox");
        assert_eq!(pve.settings["node"].as_str(), Some("pve2"));
        assert_eq!(pve.settings["storage"].as_str(), Some("ceph"));
        assert_eq!(
            pve.settings["secret_env"].as_str(),
            Some("OVERCAST_PVE_SECRET")
        );
    }

    #[test]
    fn a_qemu_size_that_cannot_be_read_is_reported() {
        let imported = run(
            "[]",
            r#"{"named": {"os": {"os_disk_size_gb": 20}, "clouds": {"Local": {"instance_type": "t3.small"}}},
                "no-disk": {"clouds": {"Local": {"instance_type": "c1m1"}}},
                "no-cpu": {"os": {"os_disk_size_gb": 20}, "clouds": {"Local": {"instance_type": "c0m1"}}},
                "small-disk": {"os": {"os_disk_size_gb": -5}, "clouds": {"Local": {"instance_type": "c1m1"}}}}"#,
        );
        for line in [
            "not imported: machine type \"named\": none of its clouds maps to an overcast provider\n  cloud Local: instance_type \"t3.small\" is not of the form c<cpus>m<GB of memory>, e.g. c2m4\n",
            "  cloud Local: os.os_disk_size_gb is not set, and a qemu machine needs a disk of at least 1 GB\n",
            "  cloud Local: os.os_disk_size_gb is -5, and a qemu machine needs a disk of at least 1 GB\n",
            "  cloud Local: cpus: must be at least 1\n",
        ] {
            assert!(imported.summary.contains(line), "{}", imported.summary);
        }
        assert!(imported.toml.contains(
            "#   os: os_disk_size_gb = 20\n#   cloud Local: instance_type = \"t3.small\"\n"
        ));
        assert!(config_of(&imported).machine_types.is_empty());
    }

    #[test]
    fn a_machine_type_with_no_cloud_overcast_runs_is_a_comment() {
        let imported = run(
            "[]",
            r#"{"azure-only": {"os": {"os_type": "Windows"},
                               "clouds": {"Azure": {"instance_type": "Standard_B2s", "image": "w"}}},
                "empty": {}}"#,
        );
        assert!(imported.toml.contains(
            "# machine type \"azure-only\" is not imported: none of its clouds maps to an overcast provider\n\
             #   os: os_type = \"Windows\"\n\
             #   cloud Azure: instance_type = \"Standard_B2s\", image = \"w\"\n"
        ), "{}", imported.toml);
        assert!(imported
            .summary
            .contains("machine type \"empty\": it lists no clouds"));
        assert!(imported
            .summary
            .contains("  cloud Azure: overcast has no azure provider yet\n"));
        assert!(config_of(&imported).machine_types.is_empty());
    }

    #[test]
    fn an_aws_entry_without_an_instance_type_is_not_imported() {
        let imported = run(
            "[]",
            r#"{"t": {"os": {"os_disk_size_gb": 10},
                      "clouds": {"Aws": {"image": "ami-1"}, "Local": {"instance_type": "c1m2"}}}}"#,
        );
        assert!(imported.toml.contains(
            "# machine type \"t\" cloud Aws is not imported: instance_type: must not be empty\n#   image = \"ami-1\"\n"
        ), "{}", imported.toml);
        let config = config_of(&imported);
        assert_eq!(
            config.machine_types["t"].sizes.keys().collect::<Vec<_>>(),
            ["qemu"]
        );
    }

    #[test]
    fn two_spellings_of_one_cloud_give_one_entry() {
        let imported = run(
            "[]",
            r#"{"t": {"clouds": {"AWS": {"instance_type": "t3.large"}, "Aws": {"instance_type": "t3.small"}}}}"#,
        );
        assert!(imported.summary.contains(
            "machine type \"t\" cloud Aws: an earlier cloud of this machine type is also aws"
        ));
        assert_eq!(
            config_of(&imported).machine_types["t"].sizes["aws"]["instance_type"].as_str(),
            Some("t3.large")
        );
    }

    #[test]
    fn values_are_escaped_and_dotted_names_quoted() {
        let imported = run(
            r#"[{"name": "aws.prod", "cloud": "Aws", "region": "eu-west-1",
                 "network_id": "subnet-\"odd\"\nline", "project": "a\u0007b"}]"#,
            r#"{"t": {"os": {"os_distribution": "Deb\"ian"}, "clouds": {"Aws": {"instance_type": "t3.small"}}}}"#,
        );
        assert!(imported.toml.contains("[environments.\"aws.prod\"]\n"));
        assert!(
            imported
                .toml
                .lines()
                .filter(|l| l.starts_with('#'))
                .all(|l| !l.chars().any(|c| c.is_control() && c != '\t')),
            "{}",
            imported.toml
        );
        let config = config_of(&imported);
        assert_eq!(
            config.environments["aws.prod"].settings["subnet"].as_str(),
            Some("subnet-\"odd\"\nline")
        );
        assert_eq!(
            config.machine_types["t"].description.as_deref(),
            Some("Deb\"ian")
        );
    }

    #[test]
    fn keys_match_whatever_their_case_as_in_go() {
        let imported = run(
            r#"[{"Name": "e", "CLOUD": "Aws", "Region": "eu-west-1"}]"#,
            r#"{"t": {"OS": {"OS_Type": "Linux"}, "Clouds": {"Aws": {"Instance_Type": "t3.small"}}}}"#,
        );
        let config = config_of(&imported);
        assert!(config.environments.contains_key("e"));
        assert_eq!(
            config.machine_types["t"].description.as_deref(),
            Some("Linux")
        );
    }

    #[test]
    fn a_value_of_the_wrong_kind_is_named_by_its_json_path() {
        assert_eq!(
            environments_error(r#"[{"name": "a"}, {"name": "b"}, {"name": "c", "cloud": 3}]"#),
            "environments.json: [2].cloud: expected a string, found number 3"
        );
        assert_eq!(
            environments_error(r#"{"name": "a"}"#),
            "environments.json: expected an array of environments, found an object"
        );
        assert_eq!(
            environments_error(r#"["aws"]"#),
            "environments.json: [0]: expected an environment object, found string \"aws\""
        );
        assert_eq!(
            machine_types_error(r#"{"t": {"os": {"os_disk_size_gb": "50"}}}"#),
            "machinetypes.json: t.os.os_disk_size_gb: expected a whole number, found string \"50\""
        );
        assert_eq!(
            machine_types_error(r#"{"t": {"clouds": {"Aws": {"image": ["ami-1"]}}}}"#),
            "machinetypes.json: t.clouds.Aws.image: expected a string, found an array"
        );
        assert_eq!(
            machine_types_error(r#"{"t": {"clouds": []}}"#),
            "machinetypes.json: t.clouds: expected an object of entries by cloud, found an array"
        );
    }

    #[test]
    fn text_that_is_not_json_is_named_by_its_file() {
        let error = environments_error("[{\"name\": \"a\",}]");
        assert!(
            error.starts_with("environments.json: not valid JSON: ") && error.contains("line 1"),
            "{error}"
        );
    }
}
