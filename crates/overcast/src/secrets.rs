//! `overcast secret` and `overcast param`: secrets and parameters. Values come from a file
//! or stdin (`--value-file -`), never from a shell argument unless `--value` insists, and
//! are printed only by the commands that read them.

use anyhow::{bail, Context};
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::client::{encode, encode_key, query, Client};
use crate::output::{self, render, Format};
use crate::{follow, parse_tags, EnvArg, WaitArg};

/// Where a value comes from.
#[derive(clap::Args)]
pub struct ValueArg {
    /// Read the value from this file, or from stdin with `-`.
    #[arg(long, value_name = "FILE")]
    value_file: Option<PathBuf>,
    /// The value itself: it then sits in your shell's history and the process list.
    #[arg(long, conflicts_with = "value_file")]
    value: Option<String>,
}

impl ValueArg {
    /// The value given, if any, as bytes.
    fn read(self) -> anyhow::Result<Option<Vec<u8>>> {
        match (self.value_file, self.value) {
            (Some(path), _) if path.as_os_str() == "-" => {
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes)?;
                Ok(Some(bytes))
            }
            (Some(path), _) => std::fs::read(&path)
                .map(Some)
                .with_context(|| format!("cannot read {}", path.display())),
            (None, Some(value)) => Ok(Some(value.into_bytes())),
            (None, None) => Ok(None),
        }
    }
}

/// A secret's value in a request: text when it is UTF-8, else base64.
fn secret_value_fields(bytes: Vec<u8>) -> Value {
    match String::from_utf8(bytes) {
        Ok(text) => json!({"value": text}),
        Err(e) => json!({
            "value_base64": base64::engine::general_purpose::STANDARD.encode(e.into_bytes())
        }),
    }
}

#[derive(clap::Subcommand)]
pub enum SecretCommand {
    /// Secrets you may see, without values.
    Ls {
        #[command(flatten)]
        env: EnvArg,
        /// Only names that start with this.
        #[arg(long)]
        prefix: Option<String>,
        /// KEY=VALUE a secret must carry; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Make a secret; the value from --value-file (or `-` for stdin).
    Create {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        #[command(flatten)]
        value: ValueArg,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        kms_key_id: Option<String>,
        #[arg(long)]
        region: Option<String>,
        /// KEY=VALUE; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// A secret's description: versions, stages, deletion date, tags. Never its value.
    Get {
        #[command(flatten)]
        env: EnvArg,
        name: String,
    },
    /// Print a secret's value (operators; the read is audited).
    Value {
        #[command(flatten)]
        env: EnvArg,
        name: String,
        #[arg(long)]
        version_id: Option<String>,
        /// e.g. AWSPREVIOUS (default: AWSCURRENT).
        #[arg(long)]
        stage: Option<String>,
    },
    /// A new value (a new current version) and/or tags.
    Update {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        #[command(flatten)]
        value: ValueArg,
        /// KEY=VALUE to set; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// A tag key to remove; repeatable.
        #[arg(long = "untag", value_name = "KEY")]
        remove_tags: Vec<String>,
    },
    /// Delete after a recovery window (default 7 days; 0 deletes at once, for good).
    Rm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        /// Days: 0, or 7 to 30.
        #[arg(long, default_value_t = 7)]
        window: u32,
    },
    /// Cancel a scheduled deletion.
    Restore {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
    },
}

#[derive(clap::Subcommand)]
pub enum ParamCommand {
    /// Write a parameter (below your org's root), e.g. `param put /app/db/url --value-file -`.
    Put {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        #[command(flatten)]
        value: ValueArg,
        /// String, StringList or SecureString.
        #[arg(long = "type", default_value = "String")]
        kind: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        kms_key_id: Option<String>,
        /// Replace an existing parameter with a new version.
        #[arg(long)]
        overwrite: bool,
        /// KEY=VALUE; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// A parameter with its tags; with --decrypt, a SecureString's value too (operators;
    /// the read is audited).
    Get {
        #[command(flatten)]
        env: EnvArg,
        name: String,
        #[arg(long)]
        decrypt: bool,
    },
    /// Parameters under a path (default: all of yours), at any depth unless --one-level.
    Ls {
        #[command(flatten)]
        env: EnvArg,
        #[arg(default_value = "/")]
        path: String,
        #[arg(long)]
        one_level: bool,
    },
    /// The versions of a parameter, oldest first.
    History {
        #[command(flatten)]
        env: EnvArg,
        name: String,
    },
    /// Delete a parameter, or with --recursive everything under a path.
    Rm {
        #[command(flatten)]
        env: EnvArg,
        #[command(flatten)]
        wait: WaitArg,
        name: String,
        #[arg(long, short = 'r')]
        recursive: bool,
    },
}

fn secrets_path(env: &EnvArg) -> String {
    format!("/v1/environments/{}/secrets", env.environment)
}

fn secret_path(env: &EnvArg, name: &str) -> String {
    format!("{}/{}", secrets_path(env), encode(name))
}

fn environment_path(env: &EnvArg) -> String {
    format!("/v1/environments/{}", env.environment)
}

/// A parameter's name in a path: its own slashes kept, each segment encoded.
fn parameter_tail(name: &str) -> anyhow::Result<String> {
    let Some(rest) = name.strip_prefix('/') else {
        bail!("a parameter name starts with /, e.g. /app/db/url");
    };
    Ok(encode_key(rest))
}

pub async fn secret(
    client: &Client,
    format: Format,
    command: SecretCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        SecretCommand::Ls { env, prefix, tags } => {
            let mut params = vec![("prefix", prefix)];
            let tags = crate::key_values(&tags)?;
            let tag_keys: Vec<String> = tags.iter().map(|(k, _)| format!("tag.{k}")).collect();
            for ((_, value), key) in tags.iter().zip(&tag_keys) {
                params.push((key.as_str(), Some(value.clone())));
            }
            let listed = client
                .get(&format!("{}{}", secrets_path(&env), query(&params)))
                .await?;
            print!("{}", render(&listed, format, output::SECRETS));
        }
        SecretCommand::Create {
            env,
            wait,
            name,
            value,
            description,
            kms_key_id,
            region,
            tags,
        } => {
            let Some(bytes) = value.read()? else {
                bail!("give the value with --value-file FILE (or - for stdin)");
            };
            let mut body = json!({"name": name, "description": description,
                "kms_key_id": kms_key_id, "region": region, "tags": parse_tags(&tags)?});
            merge(&mut body, secret_value_fields(bytes));
            let operation = client
                .start(Method::POST, &secrets_path(&env), Some(&body))
                .await?;
            return follow(client, format, operation, wait.wait).await;
        }
        SecretCommand::Get { env, name } => {
            let secret = client.get(&secret_path(&env, &name)).await?;
            print!("{}", render(&secret, format, output::FIELDS));
        }
        SecretCommand::Value {
            env,
            name,
            version_id,
            stage,
        } => {
            let path = format!(
                "{}/value{}",
                secret_path(&env, &name),
                query(&[("version_id", version_id), ("stage", stage)])
            );
            let value = client.get(&path).await?;
            print_value(&value, format)?;
        }
        SecretCommand::Update {
            env,
            wait,
            name,
            value,
            tags,
            remove_tags,
        } => {
            let mut body = json!({"tags": parse_tags(&tags)?, "remove_tags": remove_tags});
            if let Some(bytes) = value.read()? {
                merge(&mut body, secret_value_fields(bytes));
            }
            let operation = client
                .start(Method::PATCH, &secret_path(&env, &name), Some(&body))
                .await?;
            return follow(client, format, operation, wait.wait).await;
        }
        SecretCommand::Rm {
            env,
            wait,
            name,
            window,
        } => {
            let path = format!("{}?window={window}", secret_path(&env, &name));
            let operation = client.start(Method::DELETE, &path, None).await?;
            return follow(client, format, operation, wait.wait).await;
        }
        SecretCommand::Restore { env, wait, name } => {
            let path = format!("{}/restore", secret_path(&env, &name));
            let operation = client.start(Method::POST, &path, None).await?;
            return follow(client, format, operation, wait.wait).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn param(
    client: &Client,
    format: Format,
    command: ParamCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        ParamCommand::Put {
            env,
            wait,
            name,
            value,
            kind,
            description,
            kms_key_id,
            overwrite,
            tags,
        } => {
            let Some(bytes) = value.read()? else {
                bail!("give the value with --value-file FILE (or - for stdin)");
            };
            let value = String::from_utf8(bytes).context("a parameter's value is text")?;
            let body = json!({"value": value, "type": kind, "description": description,
                "kms_key_id": kms_key_id, "overwrite": overwrite, "tags": parse_tags(&tags)?});
            let path = format!(
                "{}/parameters/{}",
                environment_path(&env),
                parameter_tail(&name)?
            );
            let operation = client.start(Method::PUT, &path, Some(&body)).await?;
            return follow(client, format, operation, wait.wait).await;
        }
        ParamCommand::Get { env, name, decrypt } => {
            let route = if decrypt {
                "parameter-values"
            } else {
                "parameters"
            };
            let path = format!(
                "{}/{route}/{}",
                environment_path(&env),
                parameter_tail(&name)?
            );
            let parameter = client.get(&path).await?;
            if decrypt {
                print_value(&parameter, format)?;
            } else {
                print!("{}", render(&parameter, format, output::FIELDS));
            }
        }
        ParamCommand::Ls {
            env,
            path,
            one_level,
        } => {
            let mut items = Vec::new();
            let mut page_token = None;
            loop {
                let params = [
                    ("path", Some(path.clone())),
                    ("recursive", one_level.then(|| "false".to_string())),
                    ("page_token", page_token.take()),
                ];
                let page = client
                    .get(&format!(
                        "{}/parameters{}",
                        environment_path(&env),
                        query(&params)
                    ))
                    .await?;
                items.extend(page["items"].as_array().cloned().unwrap_or_default());
                match page["next_page_token"].as_str() {
                    Some(token) => page_token = Some(token.to_string()),
                    None => break,
                }
            }
            let listed = json!({"items": items});
            print!("{}", render(&listed, format, output::PARAMETERS));
        }
        ParamCommand::History { env, name } => {
            let path = format!(
                "{}/parameter-history/{}",
                environment_path(&env),
                parameter_tail(&name)?
            );
            let versions = client.get(&path).await?;
            print!("{}", render(&versions, format, output::PARAMETER_VERSIONS));
        }
        ParamCommand::Rm {
            env,
            wait,
            name,
            recursive,
        } => {
            let path = if recursive {
                format!(
                    "{}/parameters{}",
                    environment_path(&env),
                    query(&[("path", Some(name))])
                )
            } else {
                format!(
                    "{}/parameters/{}",
                    environment_path(&env),
                    parameter_tail(&name)?
                )
            };
            let operation = client.start(Method::DELETE, &path, None).await?;
            return follow(client, format, operation, wait.wait).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn merge(body: &mut Value, fields: Value) {
    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
}

/// Prints a value as asked: in a table format, the value alone (text, or the bytes of a
/// binary secret), so it can be piped; otherwise the whole answer.
fn print_value(answer: &Value, format: Format) -> anyhow::Result<()> {
    if !matches!(format, Format::Table) {
        print!("{}", render(answer, format, output::FIELDS));
        return Ok(());
    }
    if let Some(text) = answer["value"].as_str() {
        println!("{text}");
    } else if let Some(encoded) = answer["value_base64"].as_str() {
        use std::io::Write;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded)?;
        std::io::stdout().write_all(&bytes)?;
    }
    Ok(())
}
