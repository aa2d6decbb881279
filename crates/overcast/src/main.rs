//! The `overcast` binary: `overcast serve` runs the server; every other command is a client
//! of its API.

mod client;
mod output;
mod serve;

use anyhow::{anyhow, bail};
use clap::{CommandFactory, Parser, Subcommand};
use client::{query, Client, Profile};
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
    /// Check a config file and list every problem in it.
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
    /// Operations: every change overcast makes.
    Op {
        #[command(subcommand)]
        command: OpCommand,
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
}

#[derive(Subcommand)]
enum EnvCommand {
    List,
    Get {
        name: String,
    },
    /// Machine types: named sizes per provider.
    Types,
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
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            let path = Config::locate(file.as_deref())
                .ok_or_else(|| anyhow!("no config file given, OVERCAST_CONFIG is unset and ./overcast.toml does not exist"))?;
            match Config::load(Some(&path)) {
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
            }
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
