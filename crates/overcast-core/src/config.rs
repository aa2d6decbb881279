//! The one config file: a TOML document with `OVERCAST_*` environment overrides. Loading
//! reports every problem it can find at once, each with its key path and line.

use overcast_provider::{ProviderFactories, SettingsCheck, Table};
use overcast_types::{validate_name, StagePolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the server listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The whole configuration of a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Address and port to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where overcast keeps its database (SQLite), the bootstrap admin token and local VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`; default: SQLite in `data_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// How long a request waits for its operation before answering 202 (`?timeout=` overrides).
    #[serde(default = "default_operation_timeout")]
    pub operation_timeout_secs: u64,
    /// The longest wait a request may ask for with `?timeout=`.
    #[serde(default = "default_max_operation_timeout")]
    pub max_operation_timeout_secs: u64,
    /// This server's name among several on one PostgreSQL (default: the host's name); an
    /// environment's `served_by` names the server that drives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// With several servers on one PostgreSQL: how long a server's hold on an operation
    /// lasts without its heartbeat (every third of it), so how soon another server takes
    /// over the operations of one that died.
    #[serde(default = "default_operation_lease")]
    pub operation_lease_secs: u64,
    /// How often each environment's inventory is read whole from its backend in the
    /// background (one listing per region); 0 reads it only when asked (`fresh`, or the
    /// refresh route). overcast's own changes show at once either way.
    #[serde(default = "default_inventory_refresh")]
    pub inventory_refresh_secs: u64,
    /// The longest a presigned object link may stay valid (at most 604,800: 7 days, the
    /// most SigV4 allows).
    #[serde(default = "default_presign_max")]
    pub presign_max_secs: u64,
    /// How long a console sign-in lasts before the console asks for the token again (at
    /// most the token's own life).
    #[serde(default = "default_console_session")]
    pub console_session_secs: u64,
    /// `text` for people, `json` for log collectors.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Serve `/openapi.json` and `/docs` without a token. Off by default: every route but
    /// health and version needs a token.
    #[serde(default)]
    pub public_docs: bool,
    /// Serve HTTPS with this certificate and key (PEM files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// The stage policy of environments that do not set their own.
    #[serde(default)]
    pub stages: StagePolicy,
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentConfig>,
    #[serde(default)]
    pub machine_types: BTreeMap<String, MachineType>,
    /// The compatibility families: where the routes of the tools overcast replaces act.
    #[serde(default)]
    pub compat: CompatConfig,
    /// How to reach container image registries, by the host image references name them by
    /// (`docker.io` for Docker Hub, `ghcr.io`, `registry.example.com:5000`). A registry not
    /// listed is asked over HTTPS, anonymously.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registries: BTreeMap<String, RegistryConfig>,
}

/// One registry's access: its scheme and the credentials overcast uses there. The password
/// is read from a file or the server's environment when a check needs it, never written
/// in the config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryConfig {
    /// Speak plain HTTP to it rather than HTTPS: for a registry on loopback or a trusted
    /// network.
    #[serde(default)]
    pub insecure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A file holding the password (or access token); one trailing line break is not part
    /// of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// An environment variable of the server holding the password (or access token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Whether a `password` key was written, which is refused with the ways to give one;
    /// its value is never kept.
    #[serde(
        default,
        rename = "password",
        deserialize_with = "written",
        skip_serializing
    )]
    pub password_written: bool,
}

/// Any value, read only to learn that it was there (read whole, not skipped, so it is not
/// also reported as an unknown key) and dropped.
fn written<'de, D: serde::Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    toml::Value::deserialize(value).map(|_| true)
}

/// Where each compatibility family acts. CloudMan and Flint name regions, not environments,
/// so each is served only once it is given an environment whose regions stand for theirs;
/// the Cloud VM API names overcast environments itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompatConfig {
    /// CloudMan's `/ec2` and `/s3` routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudman: Option<RegionMapping>,
    /// The Flint AWS-EC2 connector's action route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flint: Option<RegionMapping>,
    /// The Cloud VM API's `/vm` routes.
    #[serde(default)]
    pub vm_api: VmApiConfig,
    /// ecs-api's `/v1/ecs` routes.
    #[serde(default)]
    pub ecs_api: EcsApiConfig,
    /// The EC2 Query API, at `/` of the main listener.
    #[serde(default)]
    pub ec2: Ec2Config,
}

/// The EC2-compatible endpoint: an extra listener for clients that assume EC2's ports, and
/// the master key its access keys' secrets are derived from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ec2Config {
    /// Also serve the EC2 Query API (and only it) on this address, e.g. `0.0.0.0:80` for
    /// boto2 pointed at a host name without a port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The master key file (made with mode 0600 on first start when absent); every server
    /// of a deployment must share it. Default: `ec2-master-key` in the data dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_file: Option<PathBuf>,
}

/// The ecs-api family: its `{account}` path segment names an overcast environment, either
/// by the environment's own name or by an account set here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EcsApiConfig {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accounts: BTreeMap<String, EcsAccount>,
}

/// One ecs-api account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcsAccount {
    pub environment: String,
    /// The KMS key a `SecureString` parameter is encrypted with when its request names
    /// none (ecs-api's `defaultKmsKeyId`); without it, the backend's default key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// A family that names AWS regions, served by one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionMapping {
    pub environment: String,
    /// The family's region names for this environment's regions, e.g.
    /// `{"ap-southeast-2" = "local"}`; a region of the environment stands for itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub regions: BTreeMap<String, String>,
}

impl RegionMapping {
    /// The environment's region a family's `asked` region stands for, if any.
    pub fn region(&self, asked: &str, served: &[String]) -> Option<String> {
        let region = self.regions.get(asked).map_or(asked, String::as_str);
        served.iter().find(|r| *r == region).cloned()
    }
}

/// The Cloud VM API family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmApiConfig {
    /// How long start, stop and delete wait for the VM to get there (its tool waited
    /// 300 s); a create waits as long for the VM to be launched.
    #[serde(default = "default_vm_api_timeout")]
    pub timeout_secs: u64,
}

impl Default for VmApiConfig {
    fn default() -> Self {
        VmApiConfig {
            timeout_secs: default_vm_api_timeout(),
        }
    }
}

fn default_vm_api_timeout() -> u64 {
    300
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A named target: a provider and its settings. The keys every environment has are
/// core's; the rest belong to the provider, which parses and checks them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentConfig {
    /// The provider's kind: `aws`, `qemu`, `sim`.
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// This environment's stage policy; default: the top-level `[stages]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<StagePolicy>,
    /// The org that owns resources carrying no `overcast:org` tag; default: none, so only
    /// admins see them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_org: Option<String>,
    /// With several servers: the one server (by `server_name`) that drives this
    /// environment, because its resources live on that server's host (local VMs). The
    /// others list it as served there and refuse its requests; default: any server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// The provider's own keys, e.g. an aws environment's `regions` and `endpoint_url`.
    #[serde(flatten)]
    pub settings: Table,
}

impl EnvironmentConfig {
    /// An environment of `provider` with no settings yet.
    pub fn new(provider: &str) -> Self {
        EnvironmentConfig {
            provider: provider.into(),
            description: None,
            stages: None,
            default_org: None,
            served_by: None,
            settings: Table::new(),
        }
    }

    /// Sets one of the provider's keys.
    pub fn with(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.settings.insert(key.into(), value.into());
        self
    }

    fn local() -> Self {
        EnvironmentConfig {
            description: Some("virtual machines on this host (QEMU)".into()),
            ..EnvironmentConfig::new("qemu")
        }
    }
}

/// A named size and image per provider: each provider's entry is its own to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MachineType {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Each provider's entry by its kind, e.g. `aws = {instance_type = "t3.small"}`,
    /// `qemu = {cpus = 1, memory_mb = 1024, disk_gb = 10}`.
    #[serde(flatten)]
    #[schema(value_type = std::collections::BTreeMap<String, Object>)]
    pub sizes: BTreeMap<String, Table>,
}

fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}

fn default_operation_timeout() -> u64 {
    60
}

fn default_operation_lease() -> u64 {
    15
}

fn default_inventory_refresh() -> u64 {
    60
}

fn default_max_operation_timeout() -> u64 {
    3600
}

fn default_presign_max() -> u64 {
    3600
}

fn default_console_session() -> u64 {
    12 * 3600
}

/// SigV4 signatures expire after at most seven days.
const PRESIGN_LIMIT_SECS: u64 = 7 * 24 * 3600;

impl Default for Config {
    fn default() -> Self {
        // An empty document yields every default; it cannot fail to parse.
        toml::from_str("").unwrap_or_else(|_| unreachable!("an empty config parses"))
    }
}

/// One thing wrong with a config: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key path, e.g. `environments.aws-dev.regions`; empty for the whole file.
    pub path: String,
    /// The 1-based line in the file, when the key is there.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a config, with the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {n} problem{}",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            writeln!(f, "  {}: {problem}", self.source_name)?;
        }
        Ok(())
    }
}

impl Config {
    /// Finds the config file: `explicit`, else `OVERCAST_CONFIG`, else `./overcast.toml` if
    /// present; `None` means run on defaults.
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(path) = explicit {
            return Some(path.to_path_buf());
        }
        if let Some(path) = std::env::var_os("OVERCAST_CONFIG").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(path));
        }
        let local = PathBuf::from("overcast.toml");
        local.exists().then_some(local)
    }

    /// Loads the file (or the defaults), applies `OVERCAST_*` overrides, fills in the
    /// embedded defaults, and checks the result, environments by their providers.
    pub fn load(path: Option<&Path>, providers: &ProviderFactories) -> Result<Config, ConfigError> {
        let (name, text) = match path {
            Some(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                    source_name: name.clone(),
                    problems: vec![Problem {
                        path: String::new(),
                        line: None,
                        message: format!("cannot read the file: {e}"),
                    }],
                })?;
                (name, text)
            }
            None => ("(defaults)".to_string(), String::new()),
        };
        let mut config = Config::parse(&name, &text, providers)?;
        let mut problems = config.apply_env(|key| std::env::var(key).ok());
        config.fill_defaults();
        problems.extend(config.problems(providers));
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                source_name: name,
                problems: locate_lines(&text, problems),
            })
        }
    }

    /// Parses a TOML document: every unknown key (the providers' included), the first type
    /// error, and every semantic problem, each located.
    pub fn parse(
        source_name: &str,
        text: &str,
        providers: &ProviderFactories,
    ) -> Result<Config, ConfigError> {
        let fail = |problems: Vec<Problem>| ConfigError {
            source_name: source_name.to_string(),
            problems: locate_lines(text, problems),
        };
        let deserializer = toml::Deserializer::new(text);
        let mut unknown = Vec::new();
        let parsed: Result<Config, _> =
            serde_ignored::deserialize(deserializer, |path| unknown.push(path.to_string()));
        let mut problems: Vec<Problem> = unknown
            .into_iter()
            .map(|path| Problem {
                path,
                line: None,
                message: "unknown key".into(),
            })
            .collect();
        match parsed {
            Ok(config) => {
                problems.extend(config.unknown_provider_keys(providers));
                problems.extend(config.problems(providers));
                if problems.is_empty() {
                    Ok(config)
                } else {
                    Err(fail(problems))
                }
            }
            Err(e) => {
                let line = e.span().map(|span| line_of(text, span.start));
                problems.push(Problem {
                    path: String::new(),
                    line,
                    message: e.message().to_string(),
                });
                Err(fail(problems))
            }
        }
    }

    /// Applies `OVERCAST_*` overrides read through `var`; returns problems with their values.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut number = |key: &str, target: &mut u64| {
            if let Some(value) = var(key) {
                match value.parse() {
                    Ok(n) => *target = n,
                    Err(_) => problems.push(Problem {
                        path: key.into(),
                        line: None,
                        message: format!("`{value}` is not a whole number of seconds"),
                    }),
                }
            }
        };
        number(
            "OVERCAST_OPERATION_TIMEOUT_SECS",
            &mut self.operation_timeout_secs,
        );
        number(
            "OVERCAST_MAX_OPERATION_TIMEOUT_SECS",
            &mut self.max_operation_timeout_secs,
        );
        number("OVERCAST_PRESIGN_MAX_SECS", &mut self.presign_max_secs);
        number(
            "OVERCAST_CONSOLE_SESSION_SECS",
            &mut self.console_session_secs,
        );
        number(
            "OVERCAST_OPERATION_LEASE_SECS",
            &mut self.operation_lease_secs,
        );
        number(
            "OVERCAST_INVENTORY_REFRESH_SECS",
            &mut self.inventory_refresh_secs,
        );
        if let Some(listen) = var("OVERCAST_LISTEN") {
            self.listen = listen;
        }
        if let Some(dir) = var("OVERCAST_DATA_DIR") {
            self.data_dir = Some(dir.into());
        }
        if let Some(name) = var("OVERCAST_SERVER_NAME") {
            self.server_name = Some(name);
        }
        if let Some(url) = var("OVERCAST_DATABASE_URL") {
            self.database_url = Some(url);
        }
        match var("OVERCAST_LOG_FORMAT").as_deref() {
            None => {}
            Some("text") => self.log_format = LogFormat::Text,
            Some("json") => self.log_format = LogFormat::Json,
            Some(other) => problems.push(Problem {
                path: "OVERCAST_LOG_FORMAT".into(),
                line: None,
                message: format!("`{other}` is not a log format; use text or json"),
            }),
        }
        match var("OVERCAST_PUBLIC_DOCS").as_deref() {
            None => {}
            Some("true" | "1") => self.public_docs = true,
            Some("false" | "0") => self.public_docs = false,
            Some(other) => problems.push(Problem {
                path: "OVERCAST_PUBLIC_DOCS".into(),
                line: None,
                message: format!("`{other}` is not true or false"),
            }),
        }
        problems
    }

    /// The embedded defaults: a `local` environment and the `tiny`, `small`, `medium`
    /// machine types when the config names none.
    pub fn fill_defaults(&mut self) {
        if self.environments.is_empty() {
            self.environments
                .insert("local".into(), EnvironmentConfig::local());
        }
        if self.machine_types.is_empty() {
            for (name, cpus, memory_mb, disk_gb) in [
                ("tiny", 1, 256, 2),
                ("small", 1, 1024, 10),
                ("medium", 2, 4096, 20),
            ] {
                self.machine_types.insert(
                    name.into(),
                    MachineType {
                        description: Some(format!(
                            "{cpus} vCPU, {memory_mb} MiB, {disk_gb} GiB disk"
                        )),
                        sizes: BTreeMap::from([(
                            "qemu".to_string(),
                            Table::from_iter([
                                ("cpus".to_string(), toml::Value::from(cpus)),
                                ("memory_mb".to_string(), toml::Value::from(memory_mb)),
                                ("disk_gb".to_string(), toml::Value::from(disk_gb)),
                            ]),
                        )]),
                    },
                );
            }
        }
    }

    /// Every semantic problem: bad addresses, names, stage policies, provider fields.
    pub fn problems(&self, providers: &ProviderFactories) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut at = |path: String, message: String| {
            problems.push(Problem {
                path,
                line: None,
                message,
            })
        };
        if self.listen.parse::<SocketAddr>().is_err() {
            at(
                "listen".into(),
                format!("`{}` is not an address like 127.0.0.1:8080", self.listen),
            );
        }
        if let Some(url) = &self.database_url {
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                at(
                    "database_url".into(),
                    "must start with sqlite: or postgres://".into(),
                );
            }
        }
        if self.operation_lease_secs == 0 {
            at("operation_lease_secs".into(), "must be at least 1".into());
        }
        if self.operation_timeout_secs > self.max_operation_timeout_secs {
            at(
                "operation_timeout_secs".into(),
                format!(
                    "{} is more than max_operation_timeout_secs ({})",
                    self.operation_timeout_secs, self.max_operation_timeout_secs
                ),
            );
        }
        if !(1..=PRESIGN_LIMIT_SECS).contains(&self.presign_max_secs) {
            at(
                "presign_max_secs".into(),
                format!(
                    "{} is not from 1 to {PRESIGN_LIMIT_SECS} (7 days)",
                    self.presign_max_secs
                ),
            );
        }
        if self.console_session_secs == 0 {
            at(
                "console_session_secs".into(),
                "0 would end every console sign-in at once; give the seconds a sign-in lasts"
                    .into(),
            );
        }
        for e in self.stages.problems() {
            at(format!("stages.{}", e.field.unwrap_or_default()), e.message);
        }
        for (name, env) in &self.environments {
            let base = format!("environments.{name}");
            if let Err(e) = validate_name("name", name) {
                at(base.clone(), e.message);
            }
            for e in env.stages.iter().flat_map(StagePolicy::problems) {
                at(
                    format!("{base}.stages.{}", e.field.unwrap_or_default()),
                    e.message,
                );
            }
            match providers.get(env.provider.as_str()) {
                Some(factory) => {
                    let check = factory.check_environment(&env.settings);
                    for problem in check.problems {
                        at(join(&base, &problem.key), problem.message);
                    }
                    // A key of another provider is named as such; keys no provider knows
                    // are reported with the unknown keys.
                    for key in check.unknown {
                        let owners = owners_of(providers, &key);
                        if let Some((last, rest)) = owners.split_last() {
                            let whose = if rest.is_empty() {
                                format!("provider {last}")
                            } else {
                                format!("providers {} and {last}", rest.join(", "))
                            };
                            at(format!("{base}.{key}"), format!("only for {whose}"));
                        }
                    }
                }
                None => at(
                    format!("{base}.provider"),
                    not_a_provider(&env.provider, providers),
                ),
            }
        }
        for (family, mapping) in [
            ("cloudman", &self.compat.cloudman),
            ("flint", &self.compat.flint),
        ] {
            let Some(mapping) = mapping else { continue };
            if !self.environments.contains_key(&mapping.environment) {
                at(
                    format!("compat.{family}.environment"),
                    format!("no environment `{}`", mapping.environment),
                );
            }
        }
        if self.compat.vm_api.timeout_secs == 0 {
            at(
                "compat.vm_api.timeout_secs".into(),
                "must be at least 1".into(),
            );
        }
        for (account, served) in &self.compat.ecs_api.accounts {
            if !self.environments.contains_key(&served.environment) {
                at(
                    format!("compat.ecs_api.accounts.{account}.environment"),
                    format!("no environment `{}`", served.environment),
                );
            }
        }
        for (host, registry) in &self.registries {
            let base = format!("registries.\"{host}\"");
            if let Err(reason) = overcast_registry::check_domain(host) {
                at(base.clone(), reason);
            } else if !(host.contains(['.', ':', '[']) || host == "localhost") {
                at(
                    base.clone(),
                    format!("`{host}` cannot name a registry in an image reference: a registry host has a dot or a port, or is localhost"),
                );
            } else if matches!(host.as_str(), "index.docker.io" | "registry-1.docker.io") {
                at(
                    base.clone(),
                    format!(
                        "Docker Hub is named `{}` here, as in image references",
                        overcast_registry::DOCKER_HUB
                    ),
                );
            }
            let sources = [
                registry.password_file.is_some(),
                registry.password_env.is_some(),
            ];
            if registry.password_written {
                at(
                    format!("{base}.password"),
                    "a password is never written in the config: give password_file or password_env"
                        .into(),
                );
            }
            match (&registry.username, sources) {
                (_, [true, true]) => at(
                    base.clone(),
                    "give password_file or password_env, not both".into(),
                ),
                (Some(_), [false, false]) if !registry.password_written => at(
                    format!("{base}.username"),
                    "needs a password: password_file or password_env".into(),
                ),
                (None, [true, _] | [_, true]) => {
                    at(base.clone(), "a password needs a username".into())
                }
                _ => {}
            }
            if registry.password_env.as_deref().is_some_and(str::is_empty) {
                at(
                    format!("{base}.password_env"),
                    "must name an environment variable".into(),
                );
            }
        }
        for (name, machine) in &self.machine_types {
            let base = format!("machine_types.{name}");
            if let Err(e) = validate_name("name", name) {
                at(base.clone(), e.message);
            }
            if machine.sizes.is_empty() {
                at(
                    base.clone(),
                    "gives no size for any provider (add aws or qemu)".into(),
                );
            }
            for (kind, entry) in &machine.sizes {
                let path = format!("{base}.{kind}");
                match providers.get(kind.as_str()) {
                    Some(factory) => {
                        for problem in factory.check_machine(entry).problems {
                            at(join(&path, &problem.key), problem.message);
                        }
                    }
                    None => at(path, not_a_provider(kind, providers)),
                }
            }
        }
        problems
    }

    /// Keys in environments and machine types that their provider does not know and no
    /// other provider does either.
    fn unknown_provider_keys(&self, providers: &ProviderFactories) -> Vec<Problem> {
        let unknown = |path: String| Problem {
            path,
            line: None,
            message: "unknown key".into(),
        };
        let mut problems = Vec::new();
        for (name, env) in &self.environments {
            if let Some(factory) = providers.get(env.provider.as_str()) {
                let SettingsCheck { unknown: keys, .. } = factory.check_environment(&env.settings);
                problems.extend(
                    keys.into_iter()
                        .filter(|key| owners_of(providers, key).is_empty())
                        .map(|key| unknown(format!("environments.{name}.{key}"))),
                );
            }
        }
        for (name, machine) in &self.machine_types {
            for (kind, entry) in &machine.sizes {
                if let Some(factory) = providers.get(kind.as_str()) {
                    problems.extend(
                        factory
                            .check_machine(entry)
                            .unknown
                            .into_iter()
                            .map(|key| unknown(format!("machine_types.{name}.{kind}.{key}"))),
                    );
                }
            }
        }
        problems
    }

    /// The data dir: as configured, else `$XDG_DATA_HOME/overcast`, else
    /// `~/.local/share/overcast`, else `./overcast-data`.
    /// This server's name: `server_name`, else the host's name.
    pub fn server_name(&self) -> String {
        self.server_name.clone().unwrap_or_else(host_name)
    }

    /// Whether this server drives the environment (it names no other server).
    pub fn serves(&self, env: &EnvironmentConfig) -> bool {
        env.served_by
            .as_ref()
            .is_none_or(|name| *name == self.server_name())
    }

    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(xdg).join("overcast");
        }
        if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(home).join(".local/share/overcast");
        }
        PathBuf::from("overcast-data")
    }

    /// The database URL: as configured, else SQLite in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir().join("overcast.db").display()),
        }
    }

    /// The stage policy in force for an environment.
    pub fn stage_policy(&self, environment: &str) -> &StagePolicy {
        self.environments
            .get(environment)
            .and_then(|e| e.stages.as_ref())
            .unwrap_or(&self.stages)
    }
}

/// `base.key`, or `base` for a problem with the whole table.
fn join(base: &str, key: &str) -> String {
    if key.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{key}")
    }
}

/// The providers whose environments may set `key`.
fn owners_of(providers: &ProviderFactories, key: &str) -> Vec<&'static str> {
    providers
        .values()
        .filter(|f| f.environment_keys().contains(&key))
        .map(|f| f.kind())
        .collect()
}

fn not_a_provider(kind: &str, providers: &ProviderFactories) -> String {
    let known: Vec<&str> = providers.keys().copied().collect();
    format!(
        "`{kind}` is not a provider of this build ({})",
        known.join(", ")
    )
}

/// Fills in each problem's line from where its key path stands in the document.
fn locate_lines(text: &str, problems: Vec<Problem>) -> Vec<Problem> {
    let doc = toml_edit::ImDocument::parse(text.to_string()).ok();
    problems
        .into_iter()
        .map(|mut p| {
            if p.line.is_none() {
                p.line = doc
                    .as_ref()
                    .and_then(|doc| key_offset(doc, &p.path))
                    .map(|offset| line_of(text, offset));
            }
            p
        })
        .collect()
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The byte offset of the deepest key of `path` that the document has.
fn key_offset(doc: &toml_edit::ImDocument<String>, path: &str) -> Option<usize> {
    let mut item = doc.as_item();
    let mut offset = None;
    for segment in split_path(path) {
        let (key, index) = match segment.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        // A key the file lacks (a required one, say) is placed at its nearest parent.
        let Some((k, next)) = item.as_table_like().and_then(|t| t.get_key_value(key)) else {
            return offset;
        };
        offset = k.span().map(|s| s.start).or(offset);
        item = next;
        if let Some(i) = index {
            let value = item.as_array()?.get(i)?;
            offset = value.span().map(|s| s.start).or(offset);
            return offset;
        }
    }
    offset
}

/// Splits `environments.aws-dev.regions[0]` into its keys. Environment names never hold a
/// dot in a way that matters here: a name with one fails validation anyway.
fn split_path(path: &str) -> impl Iterator<Item = &str> {
    path.split('.').filter(|s| !s.is_empty())
}

/// This machine's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_error_is_located() {
        let err = Config::parse(
            "t.toml",
            "listen = \"127.0.0.1:1\"\noperation_timeout_secs = \"soon\"\n",
            &ProviderFactories::new(),
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].line, Some(2));
        assert!(
            err.problems[0].message.contains("invalid type"),
            "{}",
            err.problems[0].message
        );
    }

    #[test]
    fn compat_families_must_name_an_environment_there_is() {
        let text = "[environments.aws-dev]\nprovider = \"aws\"\n\n[compat.cloudman]\nenvironment = \"aws-prod\"\n\n[compat.vm_api]\ntimeout_secs = 0\n\n[compat.ecs_api.accounts.nonprod]\nenvironment = \"aws-test\"\n";
        let err = Config::parse("t.toml", text, &ProviderFactories::new()).unwrap_err();
        let problems: Vec<String> = err
            .problems
            .iter()
            .filter(|p| p.path.starts_with("compat."))
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            [
                "line 5: compat.cloudman.environment: no environment `aws-prod`",
                "line 8: compat.vm_api.timeout_secs: must be at least 1",
                "line 11: compat.ecs_api.accounts.nonprod.environment: no environment `aws-test`"
            ]
        );
        let mapping = RegionMapping {
            environment: "aws-dev".into(),
            regions: BTreeMap::from([("ap-southeast-2".into(), "eu-west-1".into())]),
        };
        let served = ["eu-west-1".to_string(), "us-east-1".to_string()];
        assert_eq!(
            mapping.region("ap-southeast-2", &served).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            mapping.region("us-east-1", &served).as_deref(),
            Some("us-east-1")
        );
        assert_eq!(mapping.region("eu-central-1", &served), None);
    }

    #[test]
    fn environment_variables_override_the_file() {
        let mut config = Config::default();
        let env = |key: &str| match key {
            "OVERCAST_LISTEN" => Some("0.0.0.0:9000".to_string()),
            "OVERCAST_OPERATION_TIMEOUT_SECS" => Some("5".to_string()),
            "OVERCAST_LOG_FORMAT" => Some("yaml".to_string()),
            _ => None,
        };
        let problems = config.apply_env(env);
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.operation_timeout_secs, 5);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "OVERCAST_LOG_FORMAT");
    }
}
