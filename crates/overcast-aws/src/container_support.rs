//! What ECS services lean on: CloudWatch Logs groups and their events, the IAM task
//! execution role, and Cloud Map services for service discovery.

use async_trait::async_trait;
use aws_sdk_servicediscovery::types::{
    DnsConfig, DnsRecord, FilterCondition, RecordType, RoutingPolicy, ServiceFilter,
    ServiceFilterName,
};
use overcast_provider::{
    ContainerSupport, LogEvent, LogPage, LogQuery, ProviderError, ProviderErrorKind, RegistrySpec,
    ServiceDiscovery,
};
use overcast_types::Registry;
use std::collections::BTreeMap;

use crate::errors::from_sdk;
use crate::AwsProvider;

/// ECS tasks may assume the role.
const TASK_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// What ECS does as the execution role: pull images (from ECR, or a private registry with
/// credentials in a secret), write logs, read the containers' secrets. The same as AWS's
/// managed `AmazonECSTaskExecutionRolePolicy` plus the secrets, kept inline so it works on
/// every AWS-compatible endpoint (moto has no such managed policy).
const EXECUTION_POLICY_NAME: &str = "overcast-task-execution";
const EXECUTION_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:BatchGetImage","logs:CreateLogStream","logs:PutLogEvents","secretsmanager:GetSecretValue","ssm:GetParameters","kms:Decrypt"],"Resource":"*"}]}"#;

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ProviderErrorKind::InvalidInput, "invalid_input", message)
}

fn is(error: &ProviderError, code: &str) -> bool {
    error.backend_code.as_deref() == Some(code)
}

#[async_trait]
impl ContainerSupport for AwsProvider {
    async fn ensure_log_group(
        &self,
        region: &str,
        group: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<bool, ProviderError> {
        let logs = self.logs(region).await?;
        let result = logs
            .create_log_group()
            .log_group_name(group)
            .set_tags(Some(tags.clone().into_iter().collect()))
            .send()
            .await;
        match self.observe("CreateLogGroup", region, result.map_err(from_sdk)) {
            Ok(_) => Ok(true),
            Err(e) if is(&e, "ResourceAlreadyExistsException") => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn log_group_tags(
        &self,
        region: &str,
        group: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ProviderError> {
        let logs = self.logs(region).await?;
        #[allow(deprecated)]
        let result = logs
            .list_tags_log_group()
            .log_group_name(group)
            .send()
            .await;
        match self.observe("ListTagsLogGroup", region, result.map_err(from_sdk)) {
            Ok(found) => Ok(Some(
                found
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            )),
            Err(e) if is(&e, "ResourceNotFoundException") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_log_group(&self, region: &str, group: &str) -> Result<(), ProviderError> {
        let logs = self.logs(region).await?;
        let result = logs.delete_log_group().log_group_name(group).send().await;
        match self.observe("DeleteLogGroup", region, result.map_err(from_sdk)) {
            Err(e) if !is(&e, "ResourceNotFoundException") => Err(e),
            _ => Ok(()),
        }
    }

    async fn log_events(
        &self,
        region: &str,
        group: &str,
        stream: &str,
        query: &LogQuery,
    ) -> Result<LogPage, ProviderError> {
        let logs = self.logs(region).await?;
        let result = logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_start_time(query.start_ms)
            .set_end_time(query.end_ms)
            .start_from_head(!query.newest_first)
            .limit(query.limit.clamp(1, 10_000) as i32)
            .set_next_token(query.page_token.clone())
            .send()
            .await;
        let page = match self.observe("GetLogEvents", region, result.map_err(from_sdk)) {
            Ok(page) => page,
            Err(e) if is(&e, "ResourceNotFoundException") => return Ok(LogPage::default()),
            Err(e) => return Err(e),
        };
        let mut events: Vec<LogEvent> = page
            .events()
            .iter()
            .map(|e| LogEvent {
                at_ms: e.timestamp().unwrap_or_default(),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect();
        // The end is exclusive, as on AWS; moto counts it in.
        events.retain(|e| query.end_ms.is_none_or(|end| e.at_ms < end));
        if query.newest_first {
            events.reverse();
        }
        let token = if query.newest_first {
            page.next_backward_token()
        } else {
            page.next_forward_token()
        };
        // CloudWatch answers the token it was given once there is nothing further.
        let next_page_token = token
            .filter(|t| !events.is_empty() && Some(*t) != query.page_token.as_deref())
            .map(str::to_string);
        Ok(LogPage {
            events,
            next_page_token,
        })
    }

    async fn ensure_execution_role(&self, name: &str) -> Result<String, ProviderError> {
        let region = self
            .settings
            .regions
            .first()
            .cloned()
            .ok_or_else(|| invalid("the environment has no region"))?;
        let iam = self.iam(&region).await?;
        let result = iam.get_role().role_name(name).send().await;
        match self.observe("GetRole", &region, result.map_err(from_sdk)) {
            Ok(found) => {
                if let Some(role) = found.role() {
                    return Ok(role.arn().to_string());
                }
            }
            Err(e) if is(&e, "NoSuchEntity") => {}
            Err(e) => return Err(e),
        }
        let result = iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(TASK_TRUST)
            .description("ECS task execution role made by overcast")
            .send()
            .await;
        let arn = match self.observe("CreateRole", &region, result.map_err(from_sdk)) {
            Ok(made) => made.role().map(|r| r.arn().to_string()),
            // Another request made it meanwhile.
            Err(e) if is(&e, "EntityAlreadyExists") => None,
            Err(e) => return Err(e),
        };
        let result = iam
            .put_role_policy()
            .role_name(name)
            .policy_name(EXECUTION_POLICY_NAME)
            .policy_document(EXECUTION_POLICY)
            .send()
            .await;
        self.observe("PutRolePolicy", &region, result.map_err(from_sdk))?;
        match arn {
            Some(arn) => Ok(arn),
            None => {
                let result = iam.get_role().role_name(name).send().await;
                let found = self.observe("GetRole", &region, result.map_err(from_sdk))?;
                found
                    .role()
                    .map(|r| r.arn().to_string())
                    .ok_or_else(|| invalid("IAM answered GetRole without the role"))
            }
        }
    }
}

impl AwsProvider {
    /// A Cloud Map service with its tags.
    async fn described_registry(
        &self,
        region: &str,
        id: &str,
    ) -> Result<Option<Registry>, ProviderError> {
        let discovery = self.discovery(region).await?;
        let result = discovery.get_service().id(id).send().await;
        let service = match self.observe(
            "servicediscovery:GetService",
            region,
            result.map_err(from_sdk),
        ) {
            Ok(found) => match found.service() {
                Some(service) => service.clone(),
                None => return Ok(None),
            },
            Err(e) if is(&e, "ServiceNotFound") => return Ok(None),
            Err(e) => return Err(e),
        };
        let arn = service.arn().unwrap_or_default().to_string();
        let result = discovery
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await;
        let tags = self
            .observe("ListTagsForResource", region, result.map_err(from_sdk))?
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        Ok(Some(Registry {
            id: service.id().unwrap_or_default().to_string(),
            name: service.name().unwrap_or_default().to_string(),
            arn: Some(arn),
            region: region.to_string(),
            namespace: service.namespace_id().unwrap_or_default().to_string(),
            dns_ttl: service
                .dns_config()
                .and_then(|d| d.dns_records().first())
                .map(|r| r.ttl().max(0) as u32),
            instance_count: service.instance_count().unwrap_or_default().max(0) as u32,
            tags,
            org: None,
        }))
    }
}

#[async_trait]
impl ServiceDiscovery for AwsProvider {
    async fn namespace_name(
        &self,
        region: &str,
        namespace: &str,
    ) -> Result<Option<String>, ProviderError> {
        let discovery = self.discovery(region).await?;
        let result = discovery.get_namespace().id(namespace).send().await;
        match self.observe(
            "servicediscovery:GetNamespace",
            region,
            result.map_err(from_sdk),
        ) {
            Ok(found) => Ok(Some(
                found
                    .namespace()
                    .and_then(|n| n.name())
                    .unwrap_or(namespace)
                    .to_string(),
            )),
            Err(e) if is(&e, "NamespaceNotFound") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_registries(
        &self,
        region: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Registry>, ProviderError> {
        let discovery = self.discovery(region).await?;
        let mut ids = Vec::new();
        let mut next_token = None;
        loop {
            let mut request = discovery
                .list_services()
                .max_results(100)
                .set_next_token(next_token);
            if let Some(namespace) = namespace {
                request = request.filters(
                    ServiceFilter::builder()
                        .name(ServiceFilterName::NamespaceId)
                        .values(namespace)
                        .condition(FilterCondition::Eq)
                        .build()
                        .map_err(|e| invalid(e.to_string()))?,
                );
            }
            let result = request.send().await;
            let page = self.observe(
                "servicediscovery:ListServices",
                region,
                result.map_err(from_sdk),
            )?;
            ids.extend(
                page.services()
                    .iter()
                    .filter_map(|s| s.id().map(str::to_string)),
            );
            next_token = page.next_token().map(str::to_string);
            if next_token.is_none() {
                break;
            }
        }
        let mut registries = Vec::new();
        for id in ids {
            if let Some(registry) = self.described_registry(region, &id).await? {
                registries.push(registry);
            }
        }
        Ok(registries)
    }

    async fn registry(&self, region: &str, id: &str) -> Result<Option<Registry>, ProviderError> {
        self.described_registry(region, id).await
    }

    async fn create_registry(&self, spec: &RegistrySpec) -> Result<Registry, ProviderError> {
        let discovery = self.discovery(&spec.region).await?;
        let record = DnsRecord::builder()
            .r#type(RecordType::A)
            .ttl(i64::from(spec.dns_ttl))
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        let dns = DnsConfig::builder()
            .routing_policy(RoutingPolicy::Multivalue)
            .dns_records(record)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        let tags = spec
            .tags
            .iter()
            .map(|(k, v)| {
                aws_sdk_servicediscovery::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| invalid(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let result = discovery
            .create_service()
            .name(&spec.name)
            .namespace_id(&spec.namespace)
            .dns_config(dns)
            .set_tags(Some(tags))
            .creator_request_id(&spec.client_token)
            .send()
            .await;
        let made = self.observe(
            "servicediscovery:CreateService",
            &spec.region,
            result.map_err(from_sdk),
        )?;
        let service = made
            .service()
            .ok_or_else(|| invalid("Cloud Map answered CreateService without the service"))?;
        Ok(Registry {
            id: service.id().unwrap_or_default().to_string(),
            name: service.name().unwrap_or_default().to_string(),
            arn: service.arn().map(str::to_string),
            region: spec.region.clone(),
            namespace: spec.namespace.clone(),
            dns_ttl: Some(spec.dns_ttl),
            instance_count: 0,
            tags: spec.tags.clone(),
            org: None,
        })
    }

    async fn delete_registry(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        let discovery = self.discovery(region).await?;
        let result = discovery.delete_service().id(id).send().await;
        match self.observe(
            "servicediscovery:DeleteService",
            region,
            result.map_err(from_sdk),
        ) {
            Err(e) if !is(&e, "ServiceNotFound") => Err(e),
            _ => Ok(()),
        }
    }
}
