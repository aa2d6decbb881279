//! The `overcast` binary: `overcast serve` runs the server; every other command is a client
//! of its API.

mod client;
mod containers;
mod output;
mod secrets;
mod serve;
mod storage;

use anyhow::{anyhow, bail};
use clap::{CommandFactory, Parser, Subcommand};
use client::{encode, query, Client, Profile};
use indicatif::{ProgressBar, ProgressStyle};
use output::{render, Column, Format};
use overcast_core::config::{Config, LogFormat};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "overcast",
    version,
    about = "One control plane for cloud and local infrastructure"
)]
struct Cli {
    /// The server's URL (default: the saved profile, else http://127.0.0.1:8080).
    #[arg(long, global = true, env = "OVERCAST_URL")]
    url: Option<String>,
    /// The API token (default: the saved profile).
    #[arg(long, global = true, env = "OVERCAST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// How to print answers.
    #[arg(short, long, global = true, value_enum, default_value = "table")]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Config file (default: OVERCAST_CONFIG, else ./overcast.toml if present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
    },
    /// On the server's host: mint an admin token straight into the server's store, for when
    /// every admin token is lost. Prints the secret once; the audit log records it.
    RecoverAdmin {
        /// Config file of the server (default: OVERCAST_CONFIG, else ./overcast.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The new token's name.
        #[arg(long, default_value = "recovered-admin")]
        name: String,
    },
    /// Check a config file, or import another tool's config into overcast's.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check a server URL and token, and save them as the default profile.
    Login {
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        token: Option<String>,
    },
    /// Environments and machine types.
    Env {
        #[command(subcommand)]
        command: EnvCommand,
    },
    /// Virtual machines of an environment.
    Vm {
        #[command(subcommand)]
        command: Box<VmCommand>,
    },
    /// Machine images, and whether a container image is in its registry.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// SSH key pairs.
    Keypair {
        #[command(subcommand)]
        command: KeypairCommand,
    },
    /// Security groups and their rules.
    Sg {
        #[command(subcommand)]
        command: Box<SgCommand>,
    },
    /// Object storage buckets.
    Bucket {
        #[command(subcommand)]
        command: storage::BucketCommand,
    },
    /// Objects in buckets: streamed uploads and downloads, copies, presigned links.
    Object {
        #[command(subcommand)]
        command: Box<storage::ObjectCommand>,
    },
    /// Secrets: values from files or stdin, read only by `secret value`.
    Secret {
        #[command(subcommand)]
        command: Box<secrets::SecretCommand>,
    },
    /// Parameters below your org's root.
    Param {
        #[command(subcommand)]
        command: Box<secrets::ParamCommand>,
    },
    /// Container clusters (ECS Fargate on AWS).
    Cluster {
        #[command(subcommand)]
        command: Box<containers::ClusterCommand>,
    },
    /// Task definitions: what a container task runs.
    Taskdef {
        #[command(subcommand)]
        command: Box<containers::TaskDefinitionCommand>,
    },
    /// Container services: tasks kept at a desired count.
    Service {
        #[command(subcommand)]
        command: Box<containers::ServiceCommand>,
    },
    /// Container tasks: run, list, stop, logs.
    Task {
        #[command(subcommand)]
        command: Box<containers::TaskCommand>,
    },
    /// Service discovery services (Cloud Map) for container services.
    Registry {
        #[command(subcommand)]
        command: Box<containers::RegistryCommand>,
    },
    /// Operations: every change overcast makes.
    Op {
        #[command(subcommand)]
        command: OpCommand,
    },
    /// Changes made outside overcast (created, changed, deleted), as the inventories saw
    /// them on reading the backends.
    Events {
        #[arg(long = "env")]
        environment: Option<String>,
        /// created, changed or deleted.
        #[arg(long)]
        kind: Option<String>,
        /// instance, image, security_group, bucket or container_service.
        #[arg(long)]
        resource_kind: Option<String>,
        /// Only this resource's: an instance, image or security group id, a bucket name, a
        /// container service ARN.
        #[arg(long)]
        resource: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        page_token: Option<String>,
    },
    /// The audit log of changes.
    Audit {
        #[arg(long)]
        token_id: Option<String>,
        #[arg(long)]
        operation_id: Option<String>,
        /// RFC 3339 time, e.g. 2026-11-01T00:00:00Z.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        page_token: Option<String>,
    },
    /// API tokens (admin).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Exit non-zero and list every problem, with its line, if the config is bad.
    Check {
        /// The file (default: OVERCAST_CONFIG, else ./overcast.toml).
        file: Option<PathBuf>,
    },
    /// Print overcast config (environments and machine types) made from the Cloud VM API's
    /// environments.json and machinetypes.json, to paste into overcast.toml. What overcast
    /// cannot run stays in it as comments and is listed on stderr.
    ImportVmApi {
        /// The Cloud VM API's environments.json: an array of environments.
        #[arg(value_name = "ENVIRONMENTS_JSON")]
        environments: PathBuf,
        /// The Cloud VM API's machinetypes.json: machine types by name.
        #[arg(value_name = "MACHINETYPES_JSON")]
        machine_types: PathBuf,
    },
}

#[derive(Subcommand)]
enum EnvCommand {
    List,
    Get {
        name: String,
    },
    /// Machine types: named sizes per provider.
    Types,
    /// Regions of an environment and their zones.
    Regions {
        name: String,
    },
    /// Read an environment's backend now into the server's inventory (one listing per
    /// region), recording what changed outside overcast.
    Refresh {
        name: String,
    },
}

#[derive(Subcommand)]
enum OpCommand {
    List {
        /// pending, running, succeeded, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        page_token: Option<String>,
    },
    Get {
        id: String,
    },
    /// Wait for an operation to end, showing its progress.
    Wait {
        id: String,
        /// Give up after this many seconds (0: wait for ever).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    Cancel {
        id: String,
    },
}

/// Where a VM command acts.
#[derive(clap::Args)]
struct EnvArg {
    /// The environment, e.g. aws-dev.
    #[arg(id = "environment", long = "env", short = 'e', env = "OVERCAST_ENV")]
    environment: String,
}

/// Whether a listing reads the backend.
#[derive(clap::Args)]
struct FreshArg {
    /// Read the backend now rather than the server's inventory.
    #[arg(long)]
    fresh: bool,
}

impl FreshArg {
    /// The query parameter that asks for it.
    fn param(&self) -> (&'static str, Option<String>) {
        ("fresh", self.fresh.then(|| "true".to_string()))
    }
}

/// How a change is followed.
#[derive(clap::Args)]
struct WaitArg {
    /// Wait for the operation to end, showing its progress; without it the operation id is
    /// printed at once.
    #[arg(long, short = 'w')]
    wait: bool,
}

/// What a lifecycle command acts on: one instance, or the instances a selector matches.
#[derive(clap::Args, Clone)]
struct Target {
    /// One instance; or select with --id, --stage, --tag, --name or --state.
    id: Option<String>,
    /// An instance id; repeatable.
    #[arg(long = "id", value_name = "ID")]
    ids: Vec<String>,
    #[arg(long)]
    stage: Option<String>,
    /// KEY=VALUE; repeatable.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
    #[arg(long = "name")]
    name: Option<String>,
    #[arg(long)]
    state: Option<String>,
    /// Only instances of this region (narrows a selection).
    #[arg(long)]
    region: Option<String>,
    /// Show the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// ENV/STAGE or ENV/COUNT, as a terminate or a stop of a protected stage asks.
    #[arg(long)]
    confirm: Option<String>,
}

impl Target {
    fn selects(&self) -> bool {
        !self.ids.is_empty()
            || self.stage.is_some()
            || !self.tags.is_empty()
            || self.name.is_some()
            || self.state.is_some()
    }

    /// The bulk request body for this selection, with the action's own fields.
    fn body(&self, extra: Value) -> anyhow::Result<Value> {
        let mut body = json!({
            "ids": self.id.iter().chain(&self.ids).collect::<Vec<_>>(),
            "stage": self.stage, "tags": parse_tags(&self.tags)?, "name": self.name,
            "state": self.state, "region": self.region, "dry_run": self.dry_run,
            "confirm": self.confirm,
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        Ok(body)
    }
}

#[derive(Subcommand)]
enum VmCommand {
    /// List instances (all regions of the environment).
    List {
        #[command(flatten)]
        env: EnvArg,
        #[arg(long)]
        stage: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        region: Option<String>,
        /// KEY=VALUE; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        page_token: Option<String>,
        /// Follow every page and print them as one list.
        #[arg(long, conflicts_with = "page_token")]
        all: bool,
        /// Read the backend now rather than the server's inventory.
        #[arg(long)]
        fresh: bool,
    },
    Get {
        #[command(flatten)]
        env: EnvArg,
        id: String,
        /// Read the backend now rather than the server's inventory.
        #[arg(long)]
        fresh: bool,
    },
    /// Launch instances.
    Create {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        #[arg(long)]
        name: Option<String>,
        /// A configured machine type (see `overcast env types`).
        #[arg(long)]
        machine_type: Option<String>,
        #[arg(long)]
        image: Option<String>,
        /// The provider's size, e.g. t3.small.
        #[arg(long = "type")]
        instance_type: Option<String>,
        /// qemu: virtual CPUs (with --memory and --disk instead of a machine type).
        #[arg(long)]
        cpus: Option<u32>,
        /// qemu: memory in MB.
        #[arg(long = "memory", value_name = "MB")]
        memory_mb: Option<u64>,
        /// qemu: disk size in GB.
        #[arg(long = "disk", value_name = "GB")]
        disk_gb: Option<u64>,
        #[arg(long)]
        count: Option<u32>,
        #[arg(long)]
        stage: Option<String>,
        /// KEY=VALUE; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// A script or #cloud-config, as text.
        #[arg(long, conflicts_with = "user_data_file")]
        user_data: Option<String>,
        /// Read the user data from a file.
        #[arg(long)]
        user_data_file: Option<PathBuf>,
        #[arg(long)]
        key_pair: Option<String>,
        /// Repeatable.
        #[arg(long = "security-group")]
        security_groups: Vec<String>,
        #[arg(long)]
        subnet: Option<String>,
        #[arg(long)]
        zone: Option<String>,
        #[arg(long)]
        region: Option<String>,
        /// Ask the backend whether the launch would be allowed; launch nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Start one instance, or the selected ones.
    Start {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        #[command(flatten)]
        target: Target,
    },
    /// Stop one instance, or the selected ones.
    Stop {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        #[command(flatten)]
        target: Target,
        /// Stop at once, without a graceful shutdown.
        #[arg(long)]
        force: bool,
    },
    /// Reboot one instance, or the selected ones.
    Reboot {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        #[command(flatten)]
        target: Target,
    },
    /// Terminate one instance, or the selected ones (a selection needs --confirm).
    Terminate {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        #[command(flatten)]
        target: Target,
    },
    /// Promote one instance, or the selected ones, a stage on (or --to a later stage).
    Promote {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        #[command(flatten)]
        target: Target,
        #[arg(long = "to", value_name = "STAGE")]
        to_stage: Option<String>,
    },
    /// Set tags (--set KEY=VALUE) and remove tags (--remove KEY) of one instance, or of
    /// the selected ones.
    Tag {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        #[command(flatten)]
        target: Target,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long = "remove", value_name = "KEY")]
        remove: Vec<String>,
    },
    /// Change instance type or user data (instance stopped), termination protection or
    /// security groups.
    Modify {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        id: String,
        #[arg(long = "type")]
        instance_type: Option<String>,
        /// on or off.
        #[arg(long, value_parser = ["on", "off"])]
        termination_protection: Option<String>,
        #[arg(long)]
        user_data: Option<String>,
        /// Replaces the instance's groups; repeatable.
        #[arg(long = "security-group")]
        security_groups: Vec<String>,
    },
    /// Print the serial console output.
    /// The serial console output (EC2's console output for AWS instances).
    Console {
        #[command(flatten)]
        env: EnvArg,
        id: String,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Keep printing what the console adds, until interrupted.
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    List {
        #[command(flatten)]
        env: EnvArg,
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        fresh: FreshArg,
    },
    Get {
        #[command(flatten)]
        env: EnvArg,
        id: String,
    },
    /// Make an image of an instance.
    Create {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        /// The instance to image.
        #[arg(long)]
        instance: String,
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Do not reboot the instance first.
        #[arg(long)]
        no_reboot: bool,
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Bring in an image (local environments): a qcow2 or raw disk from SOURCE, or a
    /// kernel and initrd for direct boot. SOURCE and the files are URLs or paths; paths are
    /// read by the server, so they must be on its host.
    Import {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        source: Option<String>,
        #[arg(long, requires = "initrd", conflicts_with = "source")]
        kernel: Option<String>,
        #[arg(long, requires = "kernel")]
        initrd: Option<String>,
        /// The kernel command line (default: console=ttyS0).
        #[arg(long, requires = "kernel")]
        cmdline: Option<String>,
        /// The SHA-256 the disk (or kernel) must have.
        #[arg(long)]
        sha256: Option<String>,
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Deregister an image and delete its snapshots.
    Rm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        id: String,
    },
    /// Ask a container image's registry whether it has the image: exit 0 if it does, 1 if
    /// not, 2 if that cannot be told.
    Check {
        /// nginx:alpine, ghcr.io/org/app:1.2, registry.example.com:5000/app@sha256:...
        image: String,
    },
}

#[derive(Subcommand)]
enum KeypairCommand {
    List {
        #[command(flatten)]
        env: EnvArg,
        #[arg(long)]
        region: Option<String>,
    },
    /// Make a key pair; its private key is printed (or written with --out) once.
    Create {
        #[command(flatten)]
        env: EnvArg,
        name: String,
        /// rsa (default) or ed25519.
        #[arg(long = "type")]
        key_type: Option<String>,
        #[arg(long)]
        region: Option<String>,
        /// Write the private key to this file (mode 0600) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a public key (e.g. ~/.ssh/id_ed25519.pub).
    Import {
        #[command(flatten)]
        env: EnvArg,
        name: String,
        public_key_file: PathBuf,
        #[arg(long)]
        region: Option<String>,
    },
    Rm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        #[arg(long)]
        region: Option<String>,
    },
}

/// A rule, as flags.
#[derive(clap::Args)]
struct RuleArgs {
    /// ingress or egress.
    #[arg(long, default_value = "ingress")]
    direction: String,
    /// tcp, udp, icmp or all.
    #[arg(long)]
    protocol: String,
    /// A port, or a range FROM-TO (icmp: TYPE-CODE, -1 for all); none for `all`.
    #[arg(long, allow_hyphen_values = true)]
    port: Option<String>,
    /// An IPv4 or IPv6 CIDR.
    #[arg(long, conflicts_with = "source_group")]
    cidr: Option<String>,
    /// Another group's id.
    #[arg(long)]
    source_group: Option<String>,
}

impl RuleArgs {
    fn to_json(&self) -> anyhow::Result<Value> {
        let (from, to) = match &self.port {
            None => (None, None),
            Some(port) => {
                let (from, to) = match port.get(1..).and_then(|rest| rest.find('-').map(|i| i + 1))
                {
                    Some(dash) => (&port[..dash], &port[dash + 1..]),
                    None => (port.as_str(), port.as_str()),
                };
                let number = |s: &str| {
                    s.parse::<i32>()
                        .map_err(|_| anyhow!("--port `{port}` is not PORT or FROM-TO"))
                };
                (Some(number(from)?), Some(number(to)?))
            }
        };
        Ok(json!({
            "direction": self.direction, "protocol": self.protocol, "from_port": from, "to_port": to,
            "cidr": self.cidr, "source_group": self.source_group,
        }))
    }
}

#[derive(Subcommand)]
enum SgCommand {
    List {
        #[command(flatten)]
        env: EnvArg,
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        fresh: FreshArg,
    },
    /// One group and its rules.
    Get {
        #[command(flatten)]
        env: EnvArg,
        id: String,
    },
    Create {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        #[arg(long)]
        description: String,
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        vpc: Option<String>,
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Delete a group (refused while in use).
    Rm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        id: String,
    },
    /// Add a rule.
    RuleAdd {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        id: String,
        #[command(flatten)]
        rule: RuleArgs,
    },
    /// Remove a rule.
    RuleRm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        id: String,
        #[command(flatten)]
        rule: RuleArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        #[arg(long)]
        org: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: Option<String>,
        /// e.g. 30d, 12h; default: never.
        #[arg(long)]
        expires: Option<String>,
    },
    List,
    Revoke {
        id: String,
    },
    /// Access keys of the EC2 endpoint (boto, the AWS CLI, Terraform).
    AccessKey {
        #[command(subcommand)]
        command: AccessKeyCommand,
    },
}

#[derive(Subcommand)]
enum AccessKeyCommand {
    /// Make an access key for a token (your own; admins: any), bound to an environment;
    /// its secret is printed once.
    Create {
        /// The token's id (`overcast token list`).
        token_id: String,
        #[command(flatten)]
        env: EnvArg,
    },
    /// The access keys you may see.
    List,
    /// Revoke an access key: requests signed with it fail at once.
    Revoke { id: String },
}

/// `overcast token access-key …`.
async fn access_key(
    client: &Client,
    format: Format,
    command: AccessKeyCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        AccessKeyCommand::Create { token_id, env } => {
            let body = json!({"environment": env.environment});
            let path = format!("/v1/tokens/{}/access-keys", encode(&token_id));
            let answer = client.send(Method::POST, &path, Some(&body)).await?;
            let created = answer.body;
            if format == Format::Table {
                let field = |name: &str| created[name].as_str().unwrap_or("-").to_string();
                let key = created["access_key"]["id"].as_str().unwrap_or("-");
                println!("aws_access_key_id:     {key}");
                println!("aws_secret_access_key: {}", field("secret_access_key"));
                println!(
                    "environment:           {}",
                    created["access_key"]["environment"].as_str().unwrap_or("-")
                );
                eprintln!("(the secret is shown only now: store it safely)");
            } else {
                print!("{}", render(&created, format, output::FIELDS));
            }
            Ok(exit_code_of(&created["operation"]))
        }
        AccessKeyCommand::List => {
            let listed = client.get("/v1/access-keys").await?;
            print!("{}", render(&listed, format, output::ACCESS_KEYS));
            Ok(ExitCode::SUCCESS)
        }
        AccessKeyCommand::Revoke { id } => {
            let path = format!("/v1/access-keys/{}", encode(&id));
            let answer = client.send(Method::DELETE, &path, None).await?;
            print!("{}", render(&answer.body, format, output::FIELDS));
            Ok(exit_code_of(&answer.body))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let format = cli.output;
    let client = || Client::new(cli.url.clone(), cli.token.clone());
    let print = |value: &Value, columns: &[Column]| print!("{}", render(value, format, columns));
    match cli.command {
        Command::Serve {
            config,
            listen,
            log_format,
        } => {
            let log_format = log_format.map(|f| match f {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            });
            serve::run(serve::ServeArgs {
                config,
                listen,
                log_format,
            })
            .await?;
        }
        Command::RecoverAdmin { config, name } => {
            let path = Config::locate(config.as_deref());
            let config = Config::load(path.as_deref(), &overcast::providers())
                .map_err(|e| anyhow!("{e}"))?;
            let (token, secret) = overcast_core::tokens::recover_admin(&config, &name)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            eprintln!(
                "made admin token {} ({}); its secret, shown only now:",
                token.name, token.id
            );
            println!("{secret}");
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let path = Config::locate(file.as_deref())
                .ok_or_else(|| anyhow!("no config file given, OVERCAST_CONFIG is unset and ./overcast.toml does not exist"))?;
            match Config::load(Some(&path), &overcast::providers()) {
                Ok(config) => println!(
                    "{}: ok ({} environments, {} machine types)",
                    path.display(),
                    config.environments.len(),
                    config.machine_types.len()
                ),
                Err(e) => {
                    eprint!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::Config {
            command:
                ConfigCommand::ImportVmApi {
                    environments,
                    machine_types,
                },
        } => {
            let imported = overcast::import_vm_api::import_files(
                &environments,
                &machine_types,
                &overcast::providers(),
            )?;
            print!("{}", imported.toml);
            eprint!("{}", imported.summary);
        }
        Command::Login { url, token } => {
            let client = Client::new(url.or(cli.url), token.or(cli.token))?;
            let me = client.get("/v1/whoami").await?;
            let token = client
                .token()
                .ok_or_else(|| anyhow!("give the token to save with --token or OVERCAST_TOKEN"))?;
            let profile = Profile {
                url: client.base().to_string(),
                token: token.to_string(),
            };
            let path = profile.save()?;
            println!(
                "logged in to {} as {} ({} of org {}); profile saved to {}",
                profile.url,
                me["token_name"].as_str().unwrap_or("?"),
                me["role"].as_str().unwrap_or("?"),
                me["org"].as_str().unwrap_or("?"),
                path.display()
            );
        }
        Command::Env { command } => {
            let client = client()?;
            match command {
                EnvCommand::List => {
                    print(&client.get("/v1/environments").await?, output::ENVIRONMENTS)
                }
                EnvCommand::Get { name } => print(
                    &client.get(&format!("/v1/environments/{name}")).await?,
                    output::FIELDS,
                ),
                EnvCommand::Types => print(
                    &client.get("/v1/machine-types").await?,
                    output::MACHINE_TYPES,
                ),
                EnvCommand::Refresh { name } => {
                    let answer = client
                        .send(
                            Method::POST,
                            &format!("/v1/environments/{name}/refresh"),
                            None,
                        )
                        .await?;
                    print(&answer.body, output::FIELDS)
                }
                EnvCommand::Regions { name } => print(
                    &client
                        .get(&format!("/v1/environments/{name}/regions"))
                        .await?,
                    output::REGIONS,
                ),
            }
        }
        Command::Vm { command } => return vm(&client()?, format, *command).await,
        Command::Sg { command } => return sg(&client()?, format, *command).await,
        Command::Image { command } => return image(&client()?, format, command).await,
        Command::Keypair { command } => return keypair(&client()?, format, command).await,
        Command::Bucket { command } => return storage::bucket(&client()?, format, command).await,
        Command::Object { command } => return storage::object(&client()?, format, *command).await,
        Command::Secret { command } => return secrets::secret(&client()?, format, *command).await,
        Command::Param { command } => return secrets::param(&client()?, format, *command).await,
        Command::Cluster { command } => {
            return containers::cluster(&client()?, format, *command).await
        }
        Command::Taskdef { command } => {
            return containers::task_definition(&client()?, format, *command).await
        }
        Command::Service { command } => {
            return containers::service(&client()?, format, *command).await
        }
        Command::Task { command } => return containers::task(&client()?, format, *command).await,
        Command::Registry { command } => {
            return containers::registry(&client()?, format, *command).await
        }
        Command::Op { command } => {
            let client = client()?;
            match command {
                OpCommand::List {
                    status,
                    kind,
                    since,
                    limit,
                    page_token,
                } => {
                    let q = query(&[
                        ("status", status),
                        ("kind", kind),
                        ("since", since),
                        ("limit", limit.map(|l| l.to_string())),
                        ("page_token", page_token),
                    ]);
                    print(
                        &client.get(&format!("/v1/operations{q}")).await?,
                        output::OPERATIONS,
                    );
                }
                OpCommand::Get { id } => print(
                    &client.get(&format!("/v1/operations/{id}")).await?,
                    output::FIELDS,
                ),
                OpCommand::Wait { id, timeout } => {
                    let operation = wait(&client, &id, timeout).await?;
                    print(&operation, output::FIELDS);
                    return Ok(exit_code_of(&operation));
                }
                OpCommand::Cancel { id } => {
                    let answer = client
                        .send(Method::POST, &format!("/v1/operations/{id}/cancel"), None)
                        .await?;
                    print(&answer.body, output::FIELDS);
                }
            }
        }
        Command::Events {
            environment,
            kind,
            resource_kind,
            resource,
            limit,
            page_token,
        } => {
            let q = query(&[
                ("environment", environment),
                ("kind", kind),
                ("resource_kind", resource_kind),
                ("resource", resource),
                ("limit", limit.map(|l| l.to_string())),
                ("page_token", page_token),
            ]);
            print(
                &client()?.get(&format!("/v1/events{q}")).await?,
                output::EVENTS,
            );
        }
        Command::Audit {
            token_id,
            operation_id,
            since,
            limit,
            page_token,
        } => {
            let q = query(&[
                ("token_id", token_id),
                ("operation_id", operation_id),
                ("since", since),
                ("limit", limit.map(|l| l.to_string())),
                ("page_token", page_token),
            ]);
            print(
                &client()?.get(&format!("/v1/audit{q}")).await?,
                output::AUDIT,
            );
        }
        Command::Token { command } => {
            let client = client()?;
            match command {
                TokenCommand::Create {
                    org,
                    role,
                    name,
                    expires,
                } => {
                    let body =
                        json!({"org": org, "role": role, "name": name, "expires_in": expires});
                    let answer = client.send(Method::POST, "/v1/tokens", Some(&body)).await?;
                    let mut created = answer.body;
                    if answer.status == StatusCode::ACCEPTED {
                        let id = created["operation"]["id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        created["operation"] = wait(&client, &id, 0).await?;
                    }
                    if format == Format::Table {
                        let secret = created["secret"].as_str().unwrap_or("-");
                        println!(
                            "token:  {}",
                            created["operation"]["target"].as_str().unwrap_or("-")
                        );
                        println!(
                            "status: {}",
                            created["operation"]["status"].as_str().unwrap_or("-")
                        );
                        println!("secret: {secret}");
                        eprintln!("(the secret is shown only now: store it safely)");
                    } else {
                        print(&created, output::FIELDS);
                    }
                    return Ok(exit_code_of(&created["operation"]));
                }
                TokenCommand::List => print(&client.get("/v1/tokens").await?, output::TOKENS),
                TokenCommand::AccessKey { command } => {
                    return access_key(&client, format, command).await
                }
                TokenCommand::Revoke { id } => {
                    let answer = client
                        .send(Method::DELETE, &format!("/v1/tokens/{id}"), None)
                        .await?;
                    print(&answer.body, output::FIELDS);
                    return Ok(exit_code_of(&answer.body));
                }
            }
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "overcast",
                &mut std::io::stdout(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An import source as the server takes it: URLs as they are, paths as absolute
/// `file://` URLs (the server reads them, so they must be on its host).
fn source_url(source: &str) -> anyhow::Result<String> {
    if source.contains("://") {
        return Ok(source.to_string());
    }
    let path = std::fs::canonicalize(source).map_err(|e| anyhow!("cannot find {source}: {e}"))?;
    Ok(format!("file://{}", path.display()))
}

/// `KEY=VALUE` arguments as pairs.
fn key_values(arguments: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    arguments
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("`{pair}` is not KEY=VALUE"))?;
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

/// `KEY=VALUE` arguments as a JSON object.
fn parse_tags(arguments: &[String]) -> anyhow::Result<Value> {
    let tags = key_values(arguments)?
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    Ok(Value::Object(tags))
}

async fn vm(client: &Client, format: Format, command: VmCommand) -> anyhow::Result<ExitCode> {
    let print = |value: &Value, columns: &[Column]| print!("{}", render(value, format, columns));
    let base = |env: &EnvArg| format!("/v1/environments/{}/instances", env.environment);
    let (operation, wait) = match command {
        VmCommand::List {
            env,
            stage,
            state,
            name,
            region,
            tags,
            limit,
            page_token,
            all,
            fresh,
        } => {
            let mut params = vec![
                ("stage".to_string(), stage),
                ("state".to_string(), state),
                ("name".to_string(), name),
                ("region".to_string(), region),
                ("limit".to_string(), limit.map(|l| l.to_string())),
            ];
            for (key, value) in parse_tags(&tags)?.as_object().into_iter().flatten() {
                params.push((format!("tag.{key}"), value.as_str().map(str::to_string)));
            }
            let mut page = page_token;
            let mut items = Vec::new();
            loop {
                let mut with_page: Vec<(&str, Option<String>)> = params
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect();
                with_page.push(("page_token", page.clone()));
                // The first page reads the backend; the rest page through what it read.
                if fresh && page.is_none() {
                    with_page.push(("fresh", Some("true".into())));
                }
                let mut answer = client
                    .get(&format!("{}{}", base(&env), query(&with_page)))
                    .await?;
                if !all {
                    print(&answer, output::INSTANCES);
                    return Ok(ExitCode::SUCCESS);
                }
                if let Some(more) = answer["items"].as_array_mut() {
                    items.append(more);
                }
                match answer["next_page_token"].as_str() {
                    Some(next) => page = Some(next.to_string()),
                    None => break,
                }
            }
            print(&json!({ "items": items }), output::INSTANCES);
            return Ok(ExitCode::SUCCESS);
        }
        VmCommand::Get { env, id, fresh } => {
            let q = if fresh { "?fresh=true" } else { "" };
            print(
                &client.get(&format!("{}/{id}{q}", base(&env))).await?,
                output::FIELDS,
            );
            return Ok(ExitCode::SUCCESS);
        }
        VmCommand::Console {
            env,
            id,
            tail,
            follow,
        } => {
            let path = format!("{}/{id}/console", base(&env));
            let answer = client.get(&path).await?;
            let output = answer["output"].as_str().unwrap_or_default();
            if format != Format::Table && !follow {
                print(&answer, output::FIELDS);
                return Ok(ExitCode::SUCCESS);
            }
            let lines: Vec<&str> = output.split_inclusive('\n').collect();
            let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
            print!("{}", lines[skip..].concat());
            if !follow {
                return Ok(ExitCode::SUCCESS);
            }
            let mut shown = output.len();
            loop {
                use std::io::Write;
                std::io::stdout().flush()?;
                tokio::time::sleep(Duration::from_secs(1)).await;
                let answer = client.get(&path).await?;
                let output = answer["output"].as_str().unwrap_or_default();
                // A console that got shorter was started over (a new boot of a log).
                let from = if output.len() < shown { 0 } else { shown };
                print!("{}", output.get(from..).unwrap_or_default());
                shown = output.len();
            }
        }
        VmCommand::Create {
            env,
            wait,
            name,
            machine_type,
            image,
            instance_type,
            cpus,
            memory_mb,
            disk_gb,
            count,
            stage,
            tags,
            user_data,
            user_data_file,
            key_pair,
            security_groups,
            subnet,
            zone,
            region,
            dry_run,
        } => {
            let user_data = match user_data_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?,
                ),
                None => user_data,
            };
            let body = json!({
                "name": name, "machine_type": machine_type, "image": image, "instance_type": instance_type,
                "cpus": cpus, "memory_mb": memory_mb, "disk_gb": disk_gb,
                "count": count, "stage": stage, "tags": parse_tags(&tags)?, "user_data": user_data,
                "key_pair": key_pair, "security_groups": security_groups, "subnet": subnet, "zone": zone,
                "region": region, "dry_run": dry_run,
            });
            if dry_run {
                let answer = client.send(Method::POST, &base(&env), Some(&body)).await?;
                println!(
                    "{}",
                    answer.body["message"].as_str().unwrap_or("dry run done")
                );
                return Ok(ExitCode::SUCCESS);
            }
            (
                client.start(Method::POST, &base(&env), Some(&body)).await?,
                wait.wait,
            )
        }
        VmCommand::Modify {
            env,
            wait,
            id,
            instance_type,
            termination_protection,
            user_data,
            security_groups,
        } => {
            let body = json!({
                "instance_type": instance_type,
                "termination_protection": termination_protection.map(|v| v == "on"),
                "user_data": user_data,
                "security_groups": (!security_groups.is_empty()).then_some(security_groups),
            });
            let path = format!("{}/{id}", base(&env));
            (
                client.start(Method::PATCH, &path, Some(&body)).await?,
                wait.wait,
            )
        }
        VmCommand::Start { env, wait, target } => {
            return act(client, format, &env, "start", target, json!({}), wait.wait).await
        }
        VmCommand::Stop {
            env,
            wait,
            target,
            force,
        } => {
            return act(
                client,
                format,
                &env,
                "stop",
                target,
                json!({"force": force}),
                wait.wait,
            )
            .await
        }
        VmCommand::Reboot { env, wait, target } => {
            return act(client, format, &env, "reboot", target, json!({}), wait.wait).await
        }
        VmCommand::Terminate { env, wait, target } => {
            return act(
                client,
                format,
                &env,
                "terminate",
                target,
                json!({}),
                wait.wait,
            )
            .await
        }
        VmCommand::Promote {
            env,
            wait,
            target,
            to_stage,
        } => {
            let extra = json!({"to_stage": to_stage});
            return act(client, format, &env, "promote", target, extra, wait.wait).await;
        }
        VmCommand::Tag {
            env,
            wait,
            target,
            set,
            remove,
        } => {
            if set.is_empty() && remove.is_empty() {
                bail!("give --set KEY=VALUE to set or --remove KEY");
            }
            if target.selects() {
                let mut code = ExitCode::SUCCESS;
                if !set.is_empty() {
                    let extra = json!({"set": parse_tags(&set)?});
                    code = act(
                        client,
                        format,
                        &env,
                        "tag",
                        target.clone(),
                        extra,
                        wait.wait,
                    )
                    .await?;
                }
                if !remove.is_empty() {
                    code = act(
                        client,
                        format,
                        &env,
                        "untag",
                        target,
                        json!({"keys": remove}),
                        wait.wait,
                    )
                    .await?;
                }
                return Ok(code);
            }
            let id = target.id.ok_or_else(|| {
                anyhow!(
                    "give an instance id, or select with --id, --stage, --tag, --name or --state"
                )
            })?;
            let path = format!("{}/{id}/tags", base(&env));
            let mut last = Value::Null;
            if !set.is_empty() {
                last = client
                    .start(
                        Method::PUT,
                        &path,
                        Some(&json!({"tags": parse_tags(&set)?})),
                    )
                    .await?;
            }
            if !remove.is_empty() {
                if wait.wait && !last.is_null() {
                    wait_for_operation(client, &last).await?;
                }
                last = client
                    .start(Method::DELETE, &path, Some(&json!({"keys": remove})))
                    .await?;
            }
            (last, wait.wait)
        }
    };
    follow(client, format, operation, wait).await
}

async fn sg(client: &Client, format: Format, command: SgCommand) -> anyhow::Result<ExitCode> {
    let base = |env: &EnvArg| format!("/v1/environments/{}/security-groups", env.environment);
    let (operation, wait) = match command {
        SgCommand::List { env, region, fresh } => {
            let q = query(&[("region", region), fresh.param()]);
            let listed = client.get(&format!("{}{q}", base(&env))).await?;
            print!("{}", render(&listed, format, output::SECURITY_GROUPS));
            return Ok(ExitCode::SUCCESS);
        }
        SgCommand::Get { env, id } => {
            let group = client.get(&format!("{}/{id}", base(&env))).await?;
            match format {
                Format::Table => {
                    print!(
                        "{}",
                        render(
                            &json!({"id": group["id"], "name": group["name"], "region": group["region"],
                        "vpc_id": group["vpc_id"], "description": group["description"], "org": group["org"]}),
                            format,
                            output::FIELDS
                        )
                    );
                    print!("{}", render(&group["rules"], format, output::RULES));
                }
                _ => print!("{}", render(&group, format, output::FIELDS)),
            }
            return Ok(ExitCode::SUCCESS);
        }
        SgCommand::Create {
            env,
            wait,
            name,
            description,
            region,
            vpc,
            tags,
        } => {
            let body = json!({"name": name, "description": description, "region": region, "vpc_id": vpc, "tags": parse_tags(&tags)?});
            (
                client.start(Method::POST, &base(&env), Some(&body)).await?,
                wait.wait,
            )
        }
        SgCommand::Rm { env, wait, id } => (
            client
                .start(Method::DELETE, &format!("{}/{id}", base(&env)), None)
                .await?,
            wait.wait,
        ),
        SgCommand::RuleAdd {
            env,
            wait,
            id,
            rule,
        } => {
            let path = format!("{}/{id}/rules", base(&env));
            (
                client
                    .start(Method::POST, &path, Some(&rule.to_json()?))
                    .await?,
                wait.wait,
            )
        }
        SgCommand::RuleRm {
            env,
            wait,
            id,
            rule,
        } => {
            let path = format!("{}/{id}/rules", base(&env));
            (
                client
                    .start(Method::DELETE, &path, Some(&rule.to_json()?))
                    .await?,
                wait.wait,
            )
        }
    };
    follow(client, format, operation, wait).await
}

/// `overcast image check`: present (exit 0) with its digest, media type and an index's
/// platforms, or absent (exit 1); an error when neither can be told.
async fn image_check(client: &Client, format: Format, image: &str) -> anyhow::Result<ExitCode> {
    let path = format!("/v1/images{}", query(&[("image", Some(image.to_string()))]));
    let response = client.transmit(client.builder(Method::GET, &path)).await?;
    if response.status() != StatusCode::NOT_FOUND {
        let check: Value = client.check(response).await?.json().await?;
        match format {
            Format::Table => {
                let text = |key: &str| check[key].as_str().unwrap_or("-").to_string();
                println!("present: {}", text("reference"));
                println!("digest: {}", text("digest"));
                println!("media type: {}", text("media_type"));
                if let Some(platforms) = check["platforms"].as_array() {
                    let named: Vec<String> = platforms
                        .iter()
                        .map(|p| {
                            let part = |key: &str| p[key].as_str().map(|v| format!("/{v}"));
                            let os = p["os"].as_str().unwrap_or("?");
                            format!(
                                "{os}{}{}",
                                part("architecture").unwrap_or_default(),
                                part("variant").unwrap_or_default()
                            )
                        })
                        .collect();
                    println!("platforms: {}", named.join(", "));
                }
            }
            _ => print!("{}", render(&check, format, output::FIELDS)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let error = &body["error"];
    if error["code"] != "image_not_found" {
        bail!(
            "the server answered HTTP 404: {}",
            error["message"].as_str().unwrap_or("no such route")
        );
    }
    match format {
        Format::Table => println!("absent: {}", error["message"].as_str().unwrap_or(image)),
        _ => print!("{}", render(&body, format, output::FIELDS)),
    }
    Ok(ExitCode::from(1))
}

async fn image(client: &Client, format: Format, command: ImageCommand) -> anyhow::Result<ExitCode> {
    let base = |env: &EnvArg| format!("/v1/environments/{}/images", env.environment);
    let (operation, wait) = match command {
        ImageCommand::List { env, region, fresh } => {
            let q = query(&[("region", region), fresh.param()]);
            let listed = client.get(&format!("{}{q}", base(&env))).await?;
            print!("{}", render(&listed, format, output::IMAGES));
            return Ok(ExitCode::SUCCESS);
        }
        ImageCommand::Get { env, id } => {
            let image = client.get(&format!("{}/{id}", base(&env))).await?;
            print!("{}", render(&image, format, output::FIELDS));
            return Ok(ExitCode::SUCCESS);
        }
        ImageCommand::Check { image } => {
            return match image_check(client, format, &image).await {
                Ok(found) => Ok(found),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    Ok(ExitCode::from(2))
                }
            };
        }
        ImageCommand::Create {
            env,
            wait,
            instance,
            name,
            description,
            no_reboot,
            tags,
        } => {
            let body = json!({"instance_id": instance, "name": name, "description": description,
                "no_reboot": no_reboot, "tags": parse_tags(&tags)?});
            (
                client.start(Method::POST, &base(&env), Some(&body)).await?,
                wait.wait,
            )
        }
        ImageCommand::Import {
            env,
            wait,
            name,
            source,
            kernel,
            initrd,
            cmdline,
            sha256,
            tags,
        } => {
            let body = json!({
                "name": name,
                "url": source.as_deref().map(source_url).transpose()?,
                "kernel_url": kernel.as_deref().map(source_url).transpose()?,
                "initrd_url": initrd.as_deref().map(source_url).transpose()?,
                "cmdline": cmdline,
                "sha256": sha256,
                "tags": parse_tags(&tags)?,
            });
            (
                client
                    .start(Method::POST, &format!("{}/import", base(&env)), Some(&body))
                    .await?,
                wait.wait,
            )
        }
        ImageCommand::Rm { env, wait, id } => (
            client
                .start(Method::DELETE, &format!("{}/{id}", base(&env)), None)
                .await?,
            wait.wait,
        ),
    };
    follow(client, format, operation, wait).await
}

async fn keypair(
    client: &Client,
    format: Format,
    command: KeypairCommand,
) -> anyhow::Result<ExitCode> {
    let base = |env: &EnvArg| format!("/v1/environments/{}/key-pairs", env.environment);
    match command {
        KeypairCommand::List { env, region } => {
            let listed = client
                .get(&format!("{}{}", base(&env), query(&[("region", region)])))
                .await?;
            print!("{}", render(&listed, format, output::KEY_PAIRS));
            Ok(ExitCode::SUCCESS)
        }
        KeypairCommand::Create {
            env,
            name,
            key_type,
            region,
            out,
        } => {
            let body = json!({"name": name, "key_type": key_type, "region": region});
            let answer = client
                .send(Method::POST, &base(&env), Some(&body))
                .await?
                .body;
            let private_key = answer["private_key"].as_str().ok_or_else(|| {
                anyhow!(
                    "the server answered without a private key: {}",
                    answer["operation"]["status"]
                )
            })?;
            match out {
                Some(path) => {
                    client::write_private(&path, private_key, false)?;
                    println!(
                        "key pair {name} made; private key written to {} (mode 0600)",
                        path.display()
                    );
                }
                None => {
                    print!("{private_key}");
                    eprintln!("(the private key is shown only now: store it safely)");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeypairCommand::Import {
            env,
            name,
            public_key_file,
            region,
        } => {
            let public_key = std::fs::read_to_string(&public_key_file)
                .map_err(|e| anyhow!("cannot read {}: {e}", public_key_file.display()))?;
            let body = json!({"name": name, "public_key": public_key.trim(), "region": region});
            let answer = client
                .send(Method::POST, &base(&env), Some(&body))
                .await?
                .body;
            print!("{}", render(&answer["key_pair"], format, output::FIELDS));
            Ok(exit_code_of(&answer["operation"]))
        }
        KeypairCommand::Rm {
            env,
            wait,
            name,
            region,
        } => {
            let path = format!("{}/{name}{}", base(&env), query(&[("region", region)]));
            let operation = client.start(Method::DELETE, &path, None).await?;
            follow(client, format, operation, wait.wait).await
        }
    }
}

/// Acts on one instance, or on a selection: a dry run or a selection with nothing to do
/// prints the plan; otherwise the operation is printed or, with `wait`, followed.
#[allow(clippy::too_many_arguments)]
async fn act(
    client: &Client,
    format: Format,
    env: &EnvArg,
    action: &str,
    target: Target,
    extra: Value,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let base = format!("/v1/environments/{}/instances", env.environment);
    let operation = match (&target.id, target.selects()) {
        (Some(id), false) => {
            if target.dry_run || target.confirm.is_some() || target.region.is_some() {
                bail!("--dry-run, --confirm and --region are for selections (--id, --stage, --tag, --name, --state)");
            }
            client
                .start(Method::POST, &format!("{base}/{id}/{action}"), Some(&extra))
                .await?
        }
        (None, false) => {
            bail!("give an instance id, or select with --id, --stage, --tag, --name or --state")
        }
        (_, true) => {
            let answer = client
                .start(
                    Method::POST,
                    &format!("{base}/{action}"),
                    Some(&target.body(extra)?),
                )
                .await?;
            if answer.get("plan").is_some() {
                print_plan(format, &answer);
                return Ok(ExitCode::SUCCESS);
            }
            answer
        }
    };
    follow(client, format, operation, wait).await
}

fn print_plan(format: Format, answer: &Value) {
    match format {
        Format::Table => {
            println!("{}", answer["message"].as_str().unwrap_or_default());
            let plan = &answer["plan"];
            if plan["targets"].as_array().is_some_and(|t| !t.is_empty()) {
                print!("{}", render(&plan["targets"], format, output::PLAN_TARGETS));
            }
            if plan["skipped"].as_array().is_some_and(|t| !t.is_empty()) {
                println!("skipped:");
                print!("{}", render(&plan["skipped"], format, output::PLAN_SKIPPED));
            }
        }
        _ => print!("{}", render(answer, format, output::FIELDS)),
    }
}

/// Prints a started operation, or with `wait` follows it to its end.
async fn follow(
    client: &Client,
    format: Format,
    operation: Value,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    if !wait {
        match format {
            Format::Table => println!(
                "{} {} ({}); follow it with `overcast op wait {}`",
                operation["kind"].as_str().unwrap_or("operation"),
                operation["id"].as_str().unwrap_or("-"),
                operation["status"].as_str().unwrap_or("-"),
                operation["id"].as_str().unwrap_or("-")
            ),
            _ => print!("{}", render(&operation, format, output::FIELDS)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let ended = wait_for_operation(client, &operation).await?;
    print!("{}", render(&ended, format, output::FIELDS));
    Ok(exit_code_of(&ended))
}

async fn wait_for_operation(client: &Client, operation: &Value) -> anyhow::Result<Value> {
    let id = operation["id"]
        .as_str()
        .ok_or_else(|| anyhow!("the server answered without an operation: {operation}"))?;
    wait(client, id, 0).await
}

/// Non-zero when an operation failed or was cancelled.
fn exit_code_of(operation: &Value) -> ExitCode {
    match operation["status"].as_str() {
        Some("failed") | Some("cancelled") => {
            if let Some(message) = operation["error"]["message"].as_str() {
                eprintln!(
                    "error: the operation {}: {message}",
                    operation["status"].as_str().unwrap_or("")
                );
            }
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// Polls an operation until it ends, with a progress bar on a terminal.
async fn wait(client: &Client, id: &str, timeout_secs: u64) -> anyhow::Result<Value> {
    let started = Instant::now();
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}] {wide_bar} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    loop {
        let operation = client.get(&format!("/v1/operations/{id}")).await?;
        let status = operation["status"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        bar.set_length(operation["progress"]["total"].as_u64().unwrap_or(0));
        bar.set_position(operation["progress"]["done"].as_u64().unwrap_or(0));
        bar.set_message(format!("{id} {status}"));
        if matches!(status.as_str(), "succeeded" | "failed" | "cancelled") {
            bar.finish_and_clear();
            return Ok(operation);
        }
        if timeout_secs > 0 && started.elapsed() >= Duration::from_secs(timeout_secs) {
            bar.finish_and_clear();
            bail!("operation {id} is still {status} after {timeout_secs}s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
