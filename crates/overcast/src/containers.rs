//! `overcast cluster`, `taskdef`, `service` and `task`: container services. Each command
//! is one call of the `/v1` container routes; changes print their operation, or follow it
//! with `--wait`.

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::client::{encode, query, Client};
use crate::output::{self, render, Format};
use crate::{follow, key_values, parse_tags, EnvArg, FreshArg, WaitArg};

/// The region of a container command (default: the environment's first).
#[derive(clap::Args)]
pub struct RegionArg {
    #[arg(long)]
    region: Option<String>,
}

/// Where tasks are placed on the network.
#[derive(clap::Args)]
pub struct PlacementArgs {
    /// A subnet; repeatable.
    #[arg(long = "subnet", value_name = "SUBNET")]
    subnets: Vec<String>,
    /// A security group; repeatable.
    #[arg(long = "security-group", value_name = "GROUP")]
    security_groups: Vec<String>,
    /// Give each task a public IP.
    #[arg(long)]
    public_ip: bool,
}

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Clusters you may see, with their counts.
    Ls {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
    },
    Get {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        name: String,
    },
    /// Make a cluster (Fargate and Fargate Spot unless --capacity-provider says).
    Create {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        /// FARGATE or FARGATE_SPOT; repeatable.
        #[arg(long = "capacity-provider", value_name = "PROVIDER")]
        capacity_providers: Vec<String>,
        /// KEY=VALUE; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Delete a cluster; --recursive first deletes its services and stops its tasks.
    Rm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        #[arg(long, short = 'r')]
        recursive: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum TaskDefinitionCommand {
    /// Active revisions you may see, oldest first.
    Ls {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        #[arg(long)]
        family: Option<String>,
    },
    /// A revision (family:revision) or a family's latest (family).
    Get {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        name: String,
    },
    /// Register a revision: the whole request from --file (JSON, `-` for stdin), or one
    /// container from the flags.
    Register {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        /// The request body as JSON (see the API's RegisterTaskDefinitionRequest).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["family", "image"])]
        file: Option<PathBuf>,
        #[arg(long, required_unless_present = "file")]
        family: Option<String>,
        #[arg(long, required_unless_present = "file")]
        image: Option<String>,
        /// The container's name (default: the family).
        #[arg(long)]
        container: Option<String>,
        /// A container port; repeatable.
        #[arg(long = "port")]
        ports: Vec<u16>,
        /// NAME=VALUE; repeatable.
        #[arg(long = "env-var", value_name = "NAME=VALUE")]
        env_vars: Vec<String>,
        /// VARIABLE=SECRET: an environment variable from an overcast secret; repeatable.
        #[arg(long = "secret", value_name = "VARIABLE=SECRET")]
        secrets: Vec<String>,
        /// Task CPU units (default 256).
        #[arg(long)]
        cpu: Option<String>,
        /// Task memory in MiB (default 512).
        #[arg(long)]
        memory: Option<String>,
        #[command(flatten)]
        region: RegionArg,
    },
    /// Deregister a revision.
    Rm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
    },
}

#[derive(clap::Subcommand)]
pub enum ServiceCommand {
    /// Services of a cluster.
    Ls {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        cluster: String,
        #[command(flatten)]
        fresh: FreshArg,
    },
    /// A service: deployments, recent events, counts.
    Get {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        cluster: String,
        name: String,
    },
    /// Make a service of a task definition.
    Create {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        #[command(flatten)]
        wait: WaitArg,
        cluster: String,
        name: String,
        /// family:revision, or a family for its latest.
        #[arg(long)]
        task_definition: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[command(flatten)]
        placement: PlacementArgs,
        /// KEY=VALUE; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Change the desired count or task definition, or redeploy.
    Update {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        #[command(flatten)]
        wait: WaitArg,
        cluster: String,
        name: String,
        #[arg(long)]
        count: Option<u32>,
        #[arg(long)]
        task_definition: Option<String>,
        /// Replace every task.
        #[arg(long)]
        redeploy: bool,
    },
    /// What the service's running tasks log; -f follows them, new tasks too.
    Logs {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        cluster: String,
        name: String,
        #[command(flatten)]
        logs: LogArgs,
    },
    /// Scale to zero and delete; --recursive also deregisters its unused revisions.
    Rm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        #[command(flatten)]
        wait: WaitArg,
        cluster: String,
        name: String,
        #[arg(long, short = 'r')]
        recursive: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum TaskCommand {
    /// Tasks of a cluster (running unless --status says).
    Ls {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        cluster: String,
        #[arg(long)]
        service: Option<String>,
        /// RUNNING, PENDING or STOPPED.
        #[arg(long)]
        status: Option<String>,
    },
    Get {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        cluster: String,
        id: String,
    },
    /// Run tasks of a task definition.
    Run {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        #[command(flatten)]
        wait: WaitArg,
        cluster: String,
        task_definition: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[command(flatten)]
        placement: PlacementArgs,
    },
    Stop {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        #[command(flatten)]
        wait: WaitArg,
        cluster: String,
        id: String,
    },
    /// What a task's container logged; -f follows it.
    Logs {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        cluster: String,
        id: String,
        #[command(flatten)]
        logs: LogArgs,
    },
}

/// Which log lines to print.
#[derive(clap::Args)]
pub struct LogArgs {
    /// The container (default: the first that logs).
    #[arg(long)]
    container: Option<String>,
    /// From this time: RFC 3339, or milliseconds since the epoch.
    #[arg(long)]
    since: Option<String>,
    /// Before this time.
    #[arg(long)]
    until: Option<String>,
    /// Newest lines first (not with -f).
    #[arg(long, conflicts_with = "follow")]
    newest: bool,
    /// At most this many lines (per task), unless following.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Keep printing new lines as they come.
    #[arg(long, short = 'f')]
    follow: bool,
}

#[derive(clap::Subcommand)]
pub enum RegistryCommand {
    /// Service discovery services you may see.
    Ls {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        /// Only this namespace's (its id).
        #[arg(long)]
        namespace: Option<String>,
    },
    Get {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        id: String,
    },
    /// Make a service discovery service in a namespace.
    Create {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        #[arg(long)]
        namespace: String,
        /// Seconds a resolver keeps a task's record.
        #[arg(long, default_value_t = 60)]
        ttl: u32,
    },
    Rm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        region: RegionArg,
        #[command(flatten)]
        wait: WaitArg,
        id: String,
    },
}

/// How often `-f` asks for new lines.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Prints tasks' log lines, remembering per task where it stopped, so following prints
/// each line once.
struct LogFollower<'a> {
    env: &'a EnvArg,
    region: &'a RegionArg,
    cluster: &'a str,
    args: &'a LogArgs,
    /// Per task: the page token after the last line printed.
    positions: std::collections::HashMap<String, Option<String>>,
}

impl<'a> LogFollower<'a> {
    fn new(env: &'a EnvArg, region: &'a RegionArg, cluster: &'a str, args: &'a LogArgs) -> Self {
        LogFollower {
            env,
            region,
            cluster,
            args,
            positions: Default::default(),
        }
    }

    /// Prints the task's lines not printed yet (up to --limit when not following);
    /// `labelled` puts the task id before each line.
    async fn print_new(
        &mut self,
        client: &Client,
        task: &str,
        labelled: bool,
    ) -> anyhow::Result<()> {
        let mut token = self.positions.get(task).cloned().flatten();
        let mut printed = 0u32;
        loop {
            let order = if self.args.newest { "newest" } else { "oldest" };
            let path = format!(
                "{}/{}/logs{}",
                tasks_path(self.env, self.cluster),
                encode(task),
                query(&[
                    ("region", self.region.region.clone()),
                    ("container", self.args.container.clone()),
                    ("since", self.args.since.clone()),
                    ("until", self.args.until.clone()),
                    ("order", Some(order.to_string())),
                    ("limit", Some(self.args.limit.to_string())),
                    ("page_token", token.clone()),
                ])
            );
            let page = client.get(&path).await?;
            for line in page["lines"].as_array().into_iter().flatten() {
                let at = line["at_ms"]
                    .as_i64()
                    .and_then(|ms| {
                        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                            .ok()
                    })
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                let message = line["message"].as_str().unwrap_or_default();
                if labelled {
                    println!("{task} {at} {message}");
                } else {
                    println!("{at} {message}");
                }
                printed += 1;
            }
            match page["next_page_token"].as_str() {
                Some(next) => token = Some(next.to_string()),
                None => break,
            }
            if !self.args.follow && printed >= self.args.limit {
                break;
            }
        }
        self.positions.insert(task.to_string(), token);
        Ok(())
    }
}

fn base(env: &EnvArg) -> String {
    format!("/v1/environments/{}", env.environment)
}

fn with_region(path: String, region: &RegionArg) -> String {
    format!("{path}{}", query(&[("region", region.region.clone())]))
}

fn placement(args: &PlacementArgs) -> Value {
    json!({"subnets": args.subnets, "security_groups": args.security_groups, "public_ip": args.public_ip})
}

/// Adds a JSON object's members to another.
fn merged(mut body: Value, extra: Value) -> Value {
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

pub async fn cluster(
    client: &Client,
    format: Format,
    command: ClusterCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        ClusterCommand::Ls { env, region } => {
            let listed = client
                .get(&with_region(format!("{}/clusters", base(&env)), &region))
                .await?;
            print!("{}", render(&listed, format, output::CLUSTERS));
        }
        ClusterCommand::Get { env, region, name } => {
            let path = format!("{}/clusters/{}", base(&env), encode(&name));
            let cluster = client.get(&with_region(path, &region)).await?;
            print!("{}", render(&cluster, format, output::FIELDS));
        }
        ClusterCommand::Create {
            env,
            region,
            wait,
            name,
            capacity_providers,
            tags,
        } => {
            let mut body =
                json!({"name": name, "region": region.region, "tags": parse_tags(&tags)?});
            if !capacity_providers.is_empty() {
                body["capacity_providers"] = json!(capacity_providers);
                body["default_strategy"] =
                    json!([{"provider": capacity_providers[0], "weight": 1}]);
            }
            let path = format!("{}/clusters", base(&env));
            let operation = client.start(Method::POST, &path, Some(&body)).await?;
            return follow(client, format, operation, wait.wait).await;
        }
        ClusterCommand::Rm {
            env,
            region,
            wait,
            name,
            recursive,
        } => {
            let path = format!(
                "{}/clusters/{}{}",
                base(&env),
                encode(&name),
                query(&[
                    ("region", region.region),
                    ("recursive", recursive.then(|| "true".to_string()))
                ])
            );
            let operation = client.start(Method::DELETE, &path, None).await?;
            return follow(client, format, operation, wait.wait).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn task_definition(
    client: &Client,
    format: Format,
    command: TaskDefinitionCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        TaskDefinitionCommand::Ls {
            env,
            region,
            family,
        } => {
            let path = format!(
                "{}/task-definitions{}",
                base(&env),
                query(&[("region", region.region), ("family", family)])
            );
            let listed = client.get(&path).await?;
            print!("{}", render(&listed, format, output::TASK_DEFINITIONS));
        }
        TaskDefinitionCommand::Get { env, region, name } => {
            let path = format!("{}/task-definitions/{}", base(&env), encode(&name));
            let definition = client.get(&with_region(path, &region)).await?;
            print!("{}", render(&definition, format, output::FIELDS));
        }
        TaskDefinitionCommand::Register {
            env,
            wait,
            file,
            family,
            image,
            container,
            ports,
            env_vars,
            secrets,
            cpu,
            memory,
            region,
        } => {
            let body = match file {
                Some(path) => {
                    let mut text = String::new();
                    if path.as_os_str() == "-" {
                        std::io::stdin().read_to_string(&mut text)?;
                    } else {
                        text = std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read {}", path.display()))?;
                    }
                    serde_json::from_str(&text).context("the file is not JSON")?
                }
                None => {
                    let family = family.unwrap_or_default();
                    let ports: Vec<Value> =
                        ports.iter().map(|p| json!({"container_port": p})).collect();
                    let environment: serde_json::Map<String, Value> = key_values(&env_vars)?
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect();
                    let secrets: serde_json::Map<String, Value> = key_values(&secrets)?
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect();
                    json!({
                        "family": family, "cpu": cpu, "memory": memory, "region": region.region,
                        "containers": [{
                            "name": container.unwrap_or_else(|| family.clone()), "image": image,
                            "ports": ports, "environment": environment, "secrets": secrets,
                        }],
                    })
                }
            };
            let path = format!("{}/task-definitions", base(&env));
            let operation = client.start(Method::POST, &path, Some(&body)).await?;
            return follow(client, format, operation, wait.wait).await;
        }
        TaskDefinitionCommand::Rm {
            env,
            region,
            wait,
            name,
        } => {
            let path = format!("{}/task-definitions/{}", base(&env), encode(&name));
            let operation = client
                .start(Method::DELETE, &with_region(path, &region), None)
                .await?;
            return follow(client, format, operation, wait.wait).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn services_path(env: &EnvArg, cluster: &str) -> String {
    format!("{}/clusters/{}/services", base(env), encode(cluster))
}

pub async fn service(
    client: &Client,
    format: Format,
    command: ServiceCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        ServiceCommand::Ls {
            env,
            region,
            cluster,
            fresh,
        } => {
            let q = query(&[("region", region.region), fresh.param()]);
            let listed = client
                .get(&format!("{}{q}", services_path(&env, &cluster)))
                .await?;
            print!("{}", render(&listed, format, output::SERVICES));
        }
        ServiceCommand::Get {
            env,
            region,
            cluster,
            name,
        } => {
            let path = format!("{}/{}", services_path(&env, &cluster), encode(&name));
            let service = client.get(&with_region(path, &region)).await?;
            print!("{}", render(&service, format, output::FIELDS));
        }
        ServiceCommand::Create {
            env,
            region,
            wait,
            cluster,
            name,
            task_definition,
            count,
            placement: args,
            tags,
        } => {
            let body = merged(
                json!({"name": name, "task_definition": task_definition, "desired_count": count,
                       "region": region.region, "tags": parse_tags(&tags)?}),
                placement(&args),
            );
            let operation = client
                .start(Method::POST, &services_path(&env, &cluster), Some(&body))
                .await?;
            return follow(client, format, operation, wait.wait).await;
        }
        ServiceCommand::Update {
            env,
            region,
            wait,
            cluster,
            name,
            count,
            task_definition,
            redeploy,
        } => {
            let path = format!("{}/{}", services_path(&env, &cluster), encode(&name));
            let body = json!({"desired_count": count, "task_definition": task_definition,
                              "force_new_deployment": redeploy});
            let operation = client
                .start(Method::PATCH, &with_region(path, &region), Some(&body))
                .await?;
            return follow(client, format, operation, wait.wait).await;
        }
        ServiceCommand::Logs {
            env,
            region,
            cluster,
            name,
            logs,
        } => {
            let tasks_of_service = || {
                let path = format!(
                    "{}{}",
                    tasks_path(&env, &cluster),
                    query(&[
                        ("region", region.region.clone()),
                        ("service", Some(name.clone()))
                    ])
                );
                async move {
                    let listed = client.get(&path).await?;
                    Ok::<Vec<String>, anyhow::Error>(
                        listed["items"]
                            .as_array()
                            .map(|items| {
                                items
                                    .iter()
                                    .filter_map(|t| t["id"].as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    )
                }
            };
            let mut followed = LogFollower::new(&env, &region, &cluster, &logs);
            loop {
                for id in tasks_of_service().await? {
                    followed.print_new(client, &id, true).await?;
                }
                if !logs.follow {
                    break;
                }
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
        }
        ServiceCommand::Rm {
            env,
            region,
            wait,
            cluster,
            name,
            recursive,
        } => {
            let path = format!(
                "{}/{}{}",
                services_path(&env, &cluster),
                encode(&name),
                query(&[
                    ("region", region.region),
                    ("recursive", recursive.then(|| "true".to_string()))
                ])
            );
            let operation = client.start(Method::DELETE, &path, None).await?;
            return follow(client, format, operation, wait.wait).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tasks_path(env: &EnvArg, cluster: &str) -> String {
    format!("{}/clusters/{}/tasks", base(env), encode(cluster))
}

pub async fn task(
    client: &Client,
    format: Format,
    command: TaskCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        TaskCommand::Ls {
            env,
            region,
            cluster,
            service,
            status,
        } => {
            let path = format!(
                "{}{}",
                tasks_path(&env, &cluster),
                query(&[
                    ("region", region.region),
                    ("service", service),
                    ("status", status)
                ])
            );
            let listed = client.get(&path).await?;
            print!("{}", render(&listed, format, output::TASKS));
        }
        TaskCommand::Get {
            env,
            region,
            cluster,
            id,
        } => {
            let path = format!("{}/{}", tasks_path(&env, &cluster), encode(&id));
            let task = client.get(&with_region(path, &region)).await?;
            print!("{}", render(&task, format, output::FIELDS));
        }
        TaskCommand::Run {
            env,
            region,
            wait,
            cluster,
            task_definition,
            count,
            placement: args,
        } => {
            let body = merged(
                json!({"task_definition": task_definition, "count": count, "region": region.region}),
                placement(&args),
            );
            let operation = client
                .start(Method::POST, &tasks_path(&env, &cluster), Some(&body))
                .await?;
            return follow(client, format, operation, wait.wait).await;
        }
        TaskCommand::Logs {
            env,
            region,
            cluster,
            id,
            logs,
        } => {
            let mut followed = LogFollower::new(&env, &region, &cluster, &logs);
            loop {
                followed.print_new(client, &id, false).await?;
                if !logs.follow {
                    break;
                }
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
        }
        TaskCommand::Stop {
            env,
            region,
            wait,
            cluster,
            id,
        } => {
            let path = format!("{}/{}/stop", tasks_path(&env, &cluster), encode(&id));
            let operation = client
                .start(Method::POST, &with_region(path, &region), None)
                .await?;
            return follow(client, format, operation, wait.wait).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn registry(
    client: &Client,
    format: Format,
    command: RegistryCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        RegistryCommand::Ls {
            env,
            region,
            namespace,
        } => {
            let path = format!(
                "{}/registries{}",
                base(&env),
                query(&[("region", region.region), ("namespace", namespace)])
            );
            let listed = client.get(&path).await?;
            print!("{}", render(&listed, format, output::REGISTRIES));
        }
        RegistryCommand::Get { env, region, id } => {
            let path = format!("{}/registries/{}", base(&env), encode(&id));
            let registry = client.get(&with_region(path, &region)).await?;
            print!("{}", render(&registry, format, output::FIELDS));
        }
        RegistryCommand::Create {
            env,
            region,
            wait,
            name,
            namespace,
            ttl,
        } => {
            let body = json!({"name": name, "namespace": namespace, "dns_ttl": ttl, "region": region.region});
            let path = format!("{}/registries", base(&env));
            let operation = client.start(Method::POST, &path, Some(&body)).await?;
            return follow(client, format, operation, wait.wait).await;
        }
        RegistryCommand::Rm {
            env,
            region,
            wait,
            id,
        } => {
            let path = format!("{}/registries/{}", base(&env), encode(&id));
            let operation = client
                .start(Method::DELETE, &with_region(path, &region), None)
                .await?;
            return follow(client, format, operation, wait.wait).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
