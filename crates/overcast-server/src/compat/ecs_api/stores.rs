//! ecs-api's secrets and parameters (CONTRACTS.md §2.8, §2.9) as overcast's own: a secret
//! made here is the org's overcast secret, and a parameter `{prefix}/{param}` is the org's
//! `/{prefix}/{param}`, which lives at `/{org}/{prefix}/{param}` in the backend exactly
//! where ecs-api put it. Reads never answer a value.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use overcast_core::auth::Principal;
use overcast_core::parameters::{ParameterQuery, PutParameterRequest};
use overcast_core::secrets::{CreateSecretRequest, SecretQuery, UpdateSecretRequest};
use overcast_core::tags::{ResourceKind, TagRequest};
use overcast_types::{ParameterType, Secret, TargetOutcome};
use serde_json::json;
use std::collections::BTreeMap;

use super::decode::{self, GoStruct};
use super::{
    account, changed, finished, json_answer, query_values, render, respond, text_answer, with_org,
    EcsError, Sent, ORG_KEYS, ORG_TAG,
};
use crate::compat::{audited, ChangeContext};
use crate::native::extract::{ApiPath, Caller};
use crate::AppState;

const SECRETS: &str = "secretsmanager";
const PARAMETERS: &str = "ssm";

/// A secret's name from what the route was given: its name, or its ARN
/// (`...:secret:NAME-XXXXXX`, the suffix Secrets Manager adds).
fn secret_name(given: &str) -> &str {
    match given.split_once(":secret:") {
        Some((_, rest)) if given.starts_with("arn:") => {
            rest.rsplit_once('-').map_or(rest, |(name, _)| name)
        }
        _ => given,
    }
}

/// The caller's secret by name or ARN; another org's is not found.
async fn secret_of(
    state: &AppState,
    principal: &Principal,
    env: &str,
    given: &str,
) -> Result<Secret, EcsError> {
    let secret = state
        .core
        .secret(principal, env, None, secret_name(given))
        .await?;
    if given.starts_with("arn:") && secret.arn.as_deref() != Some(given) {
        return Err(EcsError::not_found("no secret matching filter"));
    }
    Ok(secret)
}

/// `GET .../secrets[?key=value...]`: the ARNs of the org's secrets carrying every tag the
/// query names (a `spinup:org` filter is the org's own and is ignored).
pub async fn list_secrets(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(account_name): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, SECRETS)?.environment;
            let mut tags = query_values(query.as_deref())?;
            tags.remove(ORG_TAG);
            let mut arns = Vec::new();
            let mut page_token = None;
            loop {
                let page = state
                    .core
                    .secrets(
                        &principal,
                        &env,
                        SecretQuery {
                            tags: tags.clone(),
                            limit: 100,
                            page_token,
                            ..SecretQuery::default()
                        },
                    )
                    .await?;
                arns.extend(
                    page.items
                        .into_iter()
                        .filter(|s| s.deletion_date.is_none())
                        .filter_map(|s| s.arn),
                );
                page_token = page.next_page_token;
                if page_token.is_none() {
                    break;
                }
            }
            Ok(json_answer(&json!(arns)))
        }
        .await,
    )
}

/// `POST .../secrets`: a `secretsmanager.CreateSecretInput`, tagged with the org.
pub async fn create_secret(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath(account_name): ApiPath<String>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let value = decode::body(&sent.body).map_err(|e| {
                EcsError::bad_request(format!(
                    "cannot decode body into create secret create input: {}",
                    e.text
                ))
            })?;
            let input = GoStruct::of(&value, "secretsmanager.CreateSecretInput")?;
            let env = account(&state, &account_name, SECRETS)?.environment;
            let request = CreateSecretRequest {
                name: input.string("Name")?.unwrap_or_default(),
                value: input.string("SecretString")?,
                value_base64: input.string("SecretBinary")?,
                description: input.string("Description")?,
                kms_key_id: input.string("KmsKeyId")?,
                region: None,
                tags: with_org(&principal.org, input.tags("Tags")?),
            };
            let cx = sent.context(&state, &principal)?;
            let operation = state
                .core
                .create_secret(&principal, &env, &request, cx.idempotency.as_ref())
                .await?;
            let operation = finished(&cx, operation).await?;
            let secret = secret_of(&state, &principal, &env, &request.name).await?;
            changed(
                &json!({
                    "ARN": secret.arn,
                    "Name": secret.name,
                    "VersionId": render::current_version(&secret),
                }),
                &operation,
            )
        }
        .await,
    )
}

/// `GET .../secrets/{secret}`: its description, never its value.
pub async fn show_secret(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, given)): ApiPath<(String, String)>,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, SECRETS)?.environment;
            let secret = secret_of(&state, &principal, &env, &given).await?;
            Ok(json_answer(&render::secret(&secret)))
        }
        .await,
    )
}

/// `DELETE .../secrets/{secret}[?window=0|7-30]`: scheduled for deletion in `window` days
/// (default 7), or at once with 0.
pub async fn delete_secret(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, given)): ApiPath<(String, String)>,
    RawQuery(query): RawQuery,
    sent: Sent,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, SECRETS)?.environment;
            let window = match query_values(query.as_deref())?.get("window") {
                None => 7,
                Some(text) => text.parse::<u32>().map_err(|_| {
                    EcsError::bad_request(format!("failed to parse window size as integer: {text}"))
                })?,
            };
            if overcast_core::secrets::check_window(window).is_err() {
                return Err(EcsError::bad_request(
                    "recovery window must be between 7 and 30 days",
                ));
            }
            let secret = secret_of(&state, &principal, &env, &given).await?;
            let cx = sent.context(&state, &principal)?;
            let operation = state
                .core
                .delete_secret(
                    &principal,
                    &env,
                    Some(&secret.region),
                    &secret.name,
                    window,
                    cx.idempotency.as_ref(),
                )
                .await?;
            let operation = finished(&cx, operation).await?;
            let deletion_date = if window == 0 {
                overcast_core::now()
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            } else {
                secret_of(&state, &principal, &env, &secret.name)
                    .await?
                    .deletion_date
            };
            changed(
                &json!({
                    "ARN": secret.arn,
                    "DeletionDate": render::time(deletion_date.as_deref()),
                    "Name": secret.name,
                }),
                &operation,
            )
        }
        .await,
    )
}

/// `PUT .../secrets/{secret}`: `{"Secret": new value, "Tags": [...]}`; tags alone answer
/// an empty 200, a value its new version.
pub async fn update_secret(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, given)): ApiPath<(String, String)>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let value = decode::body(&sent.body)?;
            let input = GoStruct::of(&value, "api.SecretUpdateInput")?;
            let env = account(&state, &account_name, SECRETS)?.environment;
            let tags = input.tags("Tags")?;
            if tags.contains_key(ORG_TAG) {
                return Err(EcsError::bad_request("illegal update of org tag"));
            }
            let new_value = input.string("Secret")?.filter(|v| !v.is_empty());
            if new_value.is_none() && tags.is_empty() {
                return Ok(text_answer(""));
            }
            let secret = secret_of(&state, &principal, &env, &given).await?;
            let request = UpdateSecretRequest {
                value: new_value.clone(),
                tags,
                ..UpdateSecretRequest::default()
            };
            let cx = sent.context(&state, &principal)?;
            let operation = state
                .core
                .update_secret(
                    &principal,
                    &env,
                    Some(&secret.region),
                    &secret.name,
                    &request,
                    cx.idempotency.as_ref(),
                )
                .await?;
            let operation = finished(&cx, operation).await?;
            if new_value.is_none() {
                return Ok(audited(text_answer(""), &operation));
            }
            let secret = secret_of(&state, &principal, &env, &secret.name).await?;
            changed(
                &json!({
                    "ARN": secret.arn,
                    "Name": secret.name,
                    "VersionId": render::current_version(&secret),
                    "VersionStages": ["AWSCURRENT"],
                }),
                &operation,
            )
        }
        .await,
    )
}

/// The caller's name of a parameter: `/{prefix}/{param}` (its org root is overcast's).
fn parameter_name(prefix: &str, param: &str) -> String {
    format!("/{prefix}/{param}")
}

/// The tags a parameter change sets: the caller's, minus any org tag, which is the org's.
fn caller_tags(tags: BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.into_iter()
        .filter(|(k, _)| !ORG_KEYS.contains(&k.as_str()))
        .collect()
}

/// A parameter type as SSM names it; ecs-api's default is `SecureString`.
fn parameter_type(input: &GoStruct<'_>) -> Result<Option<ParameterType>, EcsError> {
    match input.string("Type")? {
        None => Ok(None),
        Some(name) => serde_json::from_value(json!(name)).map(Some).map_err(|_| {
            EcsError::bad_request(format!(
                "Type `{name}` is not one of String, StringList, SecureString"
            ))
        }),
    }
}

/// Writes a parameter's value and waits for it.
#[allow(clippy::too_many_arguments)]
async fn put_value(
    state: &AppState,
    principal: &Principal,
    cx: &ChangeContext<'_>,
    env: &str,
    name: &str,
    input: &GoStruct<'_>,
    value: String,
    kind: ParameterType,
    default_key: Option<String>,
    overwrite: bool,
    tags: BTreeMap<String, String>,
) -> Result<overcast_types::Operation, EcsError> {
    let kms_key_id = match kind {
        ParameterType::SecureString => input.string("KeyId")?.or(default_key),
        _ => None,
    };
    let request = PutParameterRequest {
        value,
        kind,
        description: input.string("Description")?,
        kms_key_id,
        tags,
        overwrite,
        region: None,
    };
    let operation = state
        .core
        .put_parameter(principal, env, name, &request, cx.idempotency.as_ref())
        .await?;
    finished(cx, operation).await
}

/// `POST .../params/{prefix}`: an `ssm.PutParameterInput` whose `Name` is one segment;
/// answers the README's `{"Tier", "VersionId"}` (and SSM's `Version`).
pub async fn create_parameter(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, prefix)): ApiPath<(String, String)>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let value = decode::body(&sent.body).map_err(|e| {
                EcsError::bad_request(format!(
                    "cannot decode body into put parameter input: {}",
                    e.text
                ))
            })?;
            let input = GoStruct::of(&value, "ssm.PutParameterInput")?;
            input.refuse(&["AllowedPattern", "Policies"])?;
            let account = account(&state, &account_name, PARAMETERS)?;
            let short = input.string("Name")?.unwrap_or_default();
            if short.contains('/') {
                return Err(EcsError::bad_request(format!(
                    "name ({short}) cannot contain '/'"
                )));
            }
            let name = parameter_name(&prefix, &short);
            let cx = sent.context(&state, &principal)?;
            let kind = parameter_type(&input)?.unwrap_or(ParameterType::SecureString);
            let tags = caller_tags(input.tags("Tags")?);
            let operation = put_value(
                &state,
                &principal,
                &cx,
                &account.environment,
                &name,
                &input,
                input.string("Value")?.unwrap_or_default(),
                kind,
                account.kms_key_id,
                input.bool("Overwrite")?.unwrap_or(false),
                with_org(&principal.org, tags),
            )
            .await?;
            let made = state
                .core
                .parameter(&principal, &account.environment, None, &name)
                .await?;
            changed(
                &json!({
                    "Tier": "Standard",
                    "Version": made.version,
                    "VersionId": made.version.to_string(),
                }),
                &operation,
            )
        }
        .await,
    )
}

/// `GET .../params/{prefix}`: the names under the prefix, at any depth, without it.
pub async fn list_parameters(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, prefix)): ApiPath<(String, String)>,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, PARAMETERS)?.environment;
            let root = format!("/{prefix}/");
            let mut names = Vec::new();
            let mut page_token = None;
            loop {
                let query = ParameterQuery {
                    path: format!("/{prefix}"),
                    recursive: true,
                    limit: 50,
                    page_token,
                    ..ParameterQuery::default()
                };
                let page = state.core.parameters(&principal, &env, query).await?;
                names.extend(
                    page.items
                        .into_iter()
                        .map(|p| p.name.strip_prefix(&root).unwrap_or(&p.name).to_string()),
                );
                page_token = page.next_page_token;
                if page_token.is_none() {
                    break;
                }
            }
            Ok(json_answer(&json!(names)))
        }
        .await,
    )
}

/// `DELETE .../params/{prefix}`: every parameter under the prefix; answers how many.
pub async fn delete_parameters(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, prefix)): ApiPath<(String, String)>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, PARAMETERS)?.environment;
            let cx = sent.context(&state, &principal)?;
            let operation = state
                .core
                .delete_parameters_under(
                    &principal,
                    &env,
                    None,
                    &format!("/{prefix}"),
                    cx.idempotency.as_ref(),
                )
                .await?;
            let operation = finished(&cx, operation).await?;
            let deleted = operation
                .results
                .iter()
                .filter(|r| r.outcome == TargetOutcome::Done)
                .count();
            changed(&json!({"Message": "OK", "Deleted": deleted}), &operation)
        }
        .await,
    )
}

/// `GET .../params/{prefix}/{param}`: ecs-api's metadata object; never the value.
pub async fn show_parameter(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, prefix, param)): ApiPath<(String, String, String)>,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, PARAMETERS)?.environment;
            let parameter = state
                .core
                .parameter(&principal, &env, None, &parameter_name(&prefix, &param))
                .await
                .map_err(|_| EcsError::not_found("parameter not found"))?;
            Ok(json_answer(&render::parameter(&parameter, &param)))
        }
        .await,
    )
}

/// `DELETE .../params/{prefix}/{param}`.
pub async fn delete_parameter(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, prefix, param)): ApiPath<(String, String, String)>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let env = account(&state, &account_name, PARAMETERS)?.environment;
            let name = parameter_name(&prefix, &param);
            let cx = sent.context(&state, &principal)?;
            let operation = state
                .core
                .delete_parameter(&principal, &env, None, &name, cx.idempotency.as_ref())
                .await
                .map_err(|e| match e.kind {
                    overcast_types::ErrorKind::NotFound => EcsError::not_found(format!(
                        "failed to delete parameter /{}{name}",
                        principal.org
                    )),
                    _ => e.into(),
                })?;
            let operation = finished(&cx, operation).await?;
            Ok(audited(text_answer("OK"), &operation))
        }
        .await,
    )
}

/// `PUT .../params/{prefix}/{param}`: new tags, a new value, or both, on an existing
/// parameter (ecs-api tagged by the short name, so every update with tags failed).
pub async fn update_parameter(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiPath((account_name, prefix, param)): ApiPath<(String, String, String)>,
    sent: Sent,
) -> Response {
    respond(
        async {
            let value = decode::body(&sent.body)?;
            let input = GoStruct::of(&value, "ssm.PutParameterInput")?;
            let account = account(&state, &account_name, PARAMETERS)?;
            let env = account.environment.as_str();
            let name = parameter_name(&prefix, &param);
            let existing = state
                .core
                .parameter(&principal, env, None, &name)
                .await
                .map_err(|_| EcsError::not_found("parameter not found"))?;
            let tags = if input.has("Tags") {
                let tags = caller_tags(input.tags("Tags")?);
                if tags.is_empty() {
                    return Err(EcsError::bad_request("invalid input"));
                }
                Some(tags)
            } else {
                None
            };
            let new_value = input.string("Value")?.filter(|v| !v.is_empty());
            let cx = sent.context(&state, &principal)?;
            let mut last = None;
            if let Some(tags) = tags {
                let request = TagRequest {
                    target: ResourceKind::Parameter,
                    id: name.clone(),
                    set: tags,
                    remove: Vec::new(),
                };
                let idempotency = if new_value.is_some() {
                    None
                } else {
                    cx.idempotency.as_ref()
                };
                let operation = state
                    .core
                    .tag_resource(&principal, env, request, idempotency)
                    .await?;
                last = Some(finished(&cx, operation).await?);
            }
            if let Some(value) = new_value {
                let kind = parameter_type(&input)?.unwrap_or(existing.kind);
                let operation = put_value(
                    &state,
                    &principal,
                    &cx,
                    env,
                    &name,
                    &input,
                    value,
                    kind,
                    existing.kms_key_id.clone().or(account.kms_key_id),
                    true,
                    BTreeMap::new(),
                )
                .await?;
                last = Some(operation);
            }
            Ok(match last {
                Some(operation) => audited(text_answer("OK"), &operation),
                None => text_answer("OK"),
            })
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_named_by_name_or_arn() {
        assert_eq!(secret_name("sshhhhh"), "sshhhhh");
        assert_eq!(
            secret_name("arn:aws:secretsmanager:us-east-1:012345678901:secret:ShhhDontTellAnyone-123-BFyDco"),
            "ShhhDontTellAnyone-123"
        );
    }
}
