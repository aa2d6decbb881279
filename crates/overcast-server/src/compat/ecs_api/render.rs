//! overcast's resources in the shapes ecs-api answered: `json.Marshal` of the aws-sdk-go
//! v1.25.50 structs, with PascalCase keys, every field present and `null` when unset, and
//! times as RFC 3339 in UTC. What overcast does not track (attachments, statistics,
//! placement) is `null`, as the SDK left an unset field.

use overcast_types::{
    CapacityShare, Cluster, Container, ContainerService, Deployment, LogLine, Parameter, Registry,
    Secret, ServiceEvent, Task, TaskDefinition,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A time as Go's `time.Time` marshals it: RFC 3339 in UTC, `Z`, no trailing zeros.
pub fn time(at: Option<&str>) -> Value {
    match at {
        None => Value::Null,
        Some(text) => match OffsetDateTime::parse(text, &Rfc3339) {
            Ok(t) => t
                .to_offset(UtcOffset::UTC)
                .format(&Rfc3339)
                .map_or_else(|_| json!(text), Value::String),
            Err(_) => json!(text),
        },
    }
}

/// A time as Go's `time.Time.String()` writes it (`2019-10-09 15:43:44 +0000 UTC`), which
/// ecs-api's parameter show answered.
pub fn go_time_string(at: &str) -> String {
    let Ok(t) = OffsetDateTime::parse(at, &Rfc3339) else {
        return at.to_string();
    };
    let t = t.to_offset(UtcOffset::UTC);
    let fraction = match t.nanosecond() {
        0 => String::new(),
        n => format!(".{n:09}").trim_end_matches('0').to_string(),
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{fraction} +0000 UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// AWS tags, `[{"Key", "Value"}]`; none is `null`.
pub fn tags(tags: &BTreeMap<String, String>) -> Value {
    if tags.is_empty() {
        return Value::Null;
    }
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

fn strings_or_null(items: &[String]) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        json!(items)
    }
}

fn strategy(shares: &[CapacityShare]) -> Value {
    if shares.is_empty() {
        return Value::Null;
    }
    Value::Array(
        shares
            .iter()
            .map(|s| json!({"Base": s.base, "CapacityProvider": s.provider, "Weight": s.weight}))
            .collect(),
    )
}

/// The ARN of another ECS resource in the same account and region as `arn`
/// (`arn:aws:ecs:REGION:ACCOUNT:` + `resource`).
pub fn sibling_arn(arn: Option<&str>, resource: &str) -> Value {
    let Some(arn) = arn else {
        return Value::Null;
    };
    let prefix: Vec<&str> = arn.splitn(6, ':').take(5).collect();
    if prefix.len() < 5 {
        return Value::Null;
    }
    json!(format!("{}:{resource}", prefix.join(":")))
}

pub fn cluster(c: &Cluster) -> Value {
    json!({
        "ActiveServicesCount": c.active_services,
        "Attachments": null,
        "AttachmentsStatus": null,
        "CapacityProviders": strings_or_null(&c.capacity_providers),
        "ClusterArn": c.arn,
        "ClusterName": c.name,
        "DefaultCapacityProviderStrategy": strategy(&c.default_strategy),
        "PendingTasksCount": c.pending_tasks,
        "RegisteredContainerInstancesCount": 0,
        "RunningTasksCount": c.running_tasks,
        "Settings": null,
        "Statistics": null,
        "Status": c.status,
        "Tags": tags(&c.tags),
    })
}

fn container(c: &Container, region: &str) -> Value {
    let environment: Vec<Value> = c
        .environment
        .iter()
        .map(|(k, v)| json!({"Name": k, "Value": v}))
        .collect();
    let secrets: Vec<Value> = c
        .secrets
        .iter()
        .map(|(k, v)| json!({"Name": k, "ValueFrom": v}))
        .collect();
    let ports: Vec<Value> = c
        .ports
        .iter()
        .map(|p| {
            json!({"ContainerPort": p.container_port, "HostPort": p.container_port, "Protocol": p.protocol})
        })
        .collect();
    json!({
        "Command": strings_or_null(&c.command),
        "Cpu": c.cpu.unwrap_or(0),
        "DependsOn": null,
        "DisableNetworking": null,
        "DnsSearchDomains": null,
        "DnsServers": null,
        "DockerLabels": null,
        "DockerSecurityOptions": null,
        "EntryPoint": null,
        "Environment": environment,
        "Essential": c.essential,
        "ExtraHosts": null,
        "FirelensConfiguration": null,
        "HealthCheck": null,
        "Hostname": null,
        "Image": c.image,
        "Interactive": null,
        "Links": null,
        "LinuxParameters": null,
        "LogConfiguration": c.log.as_ref().map(|log| json!({
            "LogDriver": "awslogs",
            "Options": {
                "awslogs-group": log.group,
                "awslogs-region": region,
                "awslogs-stream-prefix": log.stream_prefix,
            },
            "SecretOptions": null,
        })),
        "Memory": c.memory_mb,
        "MemoryReservation": null,
        "MountPoints": [],
        "Name": c.name,
        "PortMappings": ports,
        "Privileged": null,
        "PseudoTerminal": null,
        "ReadonlyRootFilesystem": null,
        "RepositoryCredentials": c.repository_credentials.as_ref().map(|arn| json!({"CredentialsParameter": arn})),
        "ResourceRequirements": null,
        "Secrets": if secrets.is_empty() { Value::Null } else { Value::Array(secrets) },
        "StartTimeout": null,
        "StopTimeout": null,
        "SystemControls": null,
        "Ulimits": null,
        "User": null,
        "VolumesFrom": [],
        "WorkingDirectory": null,
    })
}

pub fn task_definition(d: &TaskDefinition) -> Value {
    json!({
        "Compatibilities": ["EC2", "FARGATE"],
        "ContainerDefinitions": d.containers.iter().map(|c| container(c, &d.region)).collect::<Vec<_>>(),
        "Cpu": d.cpu,
        "ExecutionRoleArn": d.execution_role,
        "Family": d.family,
        "InferenceAccelerators": null,
        "IpcMode": null,
        "Memory": d.memory,
        "NetworkMode": "awsvpc",
        "PidMode": null,
        "PlacementConstraints": [],
        "ProxyConfiguration": null,
        "RequiresAttributes": null,
        "RequiresCompatibilities": ["FARGATE"],
        "Revision": d.revision,
        "Status": d.status,
        "TaskDefinitionArn": d.arn,
        "TaskRoleArn": d.task_role,
        "Volumes": [],
    })
}

fn network(s: &ContainerService) -> Value {
    json!({"AwsvpcConfiguration": {
        "AssignPublicIp": if s.public_ip { "ENABLED" } else { "DISABLED" },
        "SecurityGroups": s.security_groups,
        "Subnets": s.subnets,
    }})
}

fn launch_type(s: &ContainerService) -> Value {
    if s.launch_type.is_empty() {
        Value::Null
    } else {
        json!(s.launch_type)
    }
}

fn deployment(d: &Deployment, s: &ContainerService) -> Value {
    json!({
        "CapacityProviderStrategy": strategy(&s.capacity_strategy),
        "CreatedAt": time(d.created_at.as_deref()),
        "DesiredCount": d.desired_count,
        "Id": d.id,
        "LaunchType": launch_type(s),
        "NetworkConfiguration": network(s),
        "PendingCount": d.pending_count,
        "PlatformVersion": null,
        "RunningCount": d.running_count,
        "Status": d.status,
        "TaskDefinition": sibling_arn(s.arn.as_deref(), &format!("task-definition/{}", d.task_definition)),
        "UpdatedAt": time(d.created_at.as_deref()),
    })
}

pub fn event(e: &ServiceEvent) -> Value {
    json!({"CreatedAt": time(Some(&e.at)), "Id": e.id, "Message": e.message})
}

pub fn service(s: &ContainerService) -> Value {
    let registries: Vec<Value> = s
        .registries
        .iter()
        .map(|arn| json!({"ContainerName": null, "ContainerPort": null, "Port": null, "RegistryArn": arn}))
        .collect();
    json!({
        "CapacityProviderStrategy": strategy(&s.capacity_strategy),
        "ClusterArn": sibling_arn(s.arn.as_deref(), &format!("cluster/{}", s.cluster)),
        "CreatedAt": time(s.created_at.as_deref()),
        "CreatedBy": null,
        "DeploymentConfiguration": null,
        "DeploymentController": null,
        "Deployments": s.deployments.iter().map(|d| deployment(d, s)).collect::<Vec<_>>(),
        "DesiredCount": s.desired_count,
        "EnableECSManagedTags": null,
        "Events": s.events.iter().map(event).collect::<Vec<_>>(),
        "HealthCheckGracePeriodSeconds": null,
        "LaunchType": launch_type(s),
        "LoadBalancers": [],
        "NetworkConfiguration": network(s),
        "PendingCount": s.pending_count,
        "PlacementConstraints": [],
        "PlacementStrategy": [],
        "PlatformVersion": null,
        "PropagateTags": null,
        "RoleArn": null,
        "RunningCount": s.running_count,
        "SchedulingStrategy": "REPLICA",
        "ServiceArn": s.arn,
        "ServiceName": s.name,
        "ServiceRegistries": registries,
        "Status": s.status,
        "Tags": tags(&s.tags),
        "TaskDefinition": sibling_arn(s.arn.as_deref(), &format!("task-definition/{}", s.task_definition)),
        "TaskSets": null,
    })
}

pub fn task(t: &Task) -> Value {
    let containers: Vec<Value> = t
        .containers
        .iter()
        .map(|c| {
            json!({
                "ContainerArn": null,
                "Cpu": null,
                "ExitCode": c.exit_code,
                "GpuIds": null,
                "HealthStatus": null,
                "Image": null,
                "ImageDigest": null,
                "LastStatus": c.last_status,
                "Memory": null,
                "MemoryReservation": null,
                "Name": c.name,
                "NetworkBindings": null,
                "NetworkInterfaces": null,
                "Reason": c.reason,
                "RuntimeId": null,
                "TaskArn": t.arn,
            })
        })
        .collect();
    json!({
        "Attachments": null,
        "Attributes": null,
        "AvailabilityZone": null,
        "CapacityProviderName": null,
        "ClusterArn": sibling_arn(t.arn.as_deref(), &format!("cluster/{}", t.cluster)),
        "Connectivity": null,
        "ConnectivityAt": null,
        "ContainerInstanceArn": null,
        "Containers": containers,
        "Cpu": null,
        "CreatedAt": time(t.started_at.as_deref()),
        "DesiredStatus": t.desired_status,
        "ExecutionStoppedAt": null,
        "Group": t.service.as_ref().map(|s| format!("service:{s}")),
        "HealthStatus": null,
        "InferenceAccelerators": null,
        "LastStatus": t.last_status,
        "LaunchType": "FARGATE",
        "Memory": null,
        "Overrides": null,
        "PlatformVersion": null,
        "PullStartedAt": null,
        "PullStoppedAt": null,
        "StartedAt": time(t.started_at.as_deref()),
        "StartedBy": null,
        "StopCode": null,
        "StoppedAt": time(t.stopped_at.as_deref()),
        "StoppedReason": t.stopped_reason,
        "StoppingAt": null,
        "Tags": tags(&t.tags),
        "TaskArn": t.arn,
        "TaskDefinitionArn": sibling_arn(t.arn.as_deref(), &format!("task-definition/{}", t.task_definition)),
        "Version": null,
    })
}

fn dns_config(r: &Registry) -> Value {
    json!({
        "DnsRecords": [{"TTL": r.dns_ttl, "Type": "A"}],
        "NamespaceId": r.namespace,
        "RoutingPolicy": "MULTIVALUE",
    })
}

/// A Cloud Map service (`servicediscovery.Service`).
pub fn registry(r: &Registry) -> Value {
    json!({
        "Arn": r.arn,
        "CreateDate": null,
        "CreatorRequestId": null,
        "Description": null,
        "DnsConfig": dns_config(r),
        "HealthCheckConfig": null,
        "HealthCheckCustomConfig": null,
        "Id": r.id,
        "InstanceCount": r.instance_count,
        "Name": r.name,
        "NamespaceId": r.namespace,
    })
}

/// A Cloud Map service in a listing (`servicediscovery.ServiceSummary`).
pub fn registry_summary(r: &Registry) -> Value {
    json!({
        "Arn": r.arn,
        "CreateDate": null,
        "Description": null,
        "DnsConfig": dns_config(r),
        "HealthCheckConfig": null,
        "HealthCheckCustomConfig": null,
        "Id": r.id,
        "InstanceCount": r.instance_count,
        "Name": r.name,
    })
}

/// `secretsmanager.DescribeSecretOutput`.
pub fn secret(s: &Secret) -> Value {
    json!({
        "ARN": s.arn,
        "DeletedDate": time(s.deletion_date.as_deref()),
        "Description": s.description,
        "KmsKeyId": s.kms_key_id,
        "LastAccessedDate": null,
        "LastChangedDate": time(s.last_changed_at.as_deref()),
        "LastRotatedDate": null,
        "Name": s.name,
        "OwningService": null,
        "RotationEnabled": if s.rotation_enabled { json!(true) } else { Value::Null },
        "RotationLambdaARN": null,
        "RotationRules": null,
        "Tags": tags(&s.tags),
        "VersionIdsToStages": s.versions,
    })
}

/// The id of a secret's current version.
pub fn current_version(s: &Secret) -> Option<&str> {
    s.versions
        .iter()
        .find(|(_, stages)| stages.iter().any(|st| st == "AWSCURRENT"))
        .map(|(id, _)| id.as_str())
}

/// ecs-api's own parameter show: the short name, Go's `time.String()` date, no value.
pub fn parameter(p: &Parameter, short_name: &str) -> Value {
    json!({
        "ARN": p.arn,
        "Name": short_name,
        "Description": p.description,
        "KeyId": p.kms_key_id,
        "Type": p.kind,
        "Tags": tags(&p.tags),
        "LastModifiedDate": p.last_modified_at.as_deref().map(go_time_string),
        "Version": p.version,
    })
}

/// `cloudwatchlogs.GetLogEventsOutput`; overcast keeps no ingestion time apart from the
/// event's own, and pages forward only.
pub fn log_events(lines: &[LogLine], next: Option<&str>) -> Value {
    json!({
        "Events": lines.iter().map(|l| json!({
            "IngestionTime": l.at_ms, "Message": l.message, "Timestamp": l.at_ms,
        })).collect::<Vec<_>>(),
        "NextBackwardToken": null,
        "NextForwardToken": next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_go_wrote_them() {
        assert_eq!(
            time(Some("2019-07-01T23:30:54+02:00")),
            json!("2019-07-01T21:30:54Z")
        );
        assert_eq!(
            time(Some("2020-01-21T15:04:05.120Z")),
            json!("2020-01-21T15:04:05.12Z")
        );
        assert_eq!(time(None), Value::Null);
        assert_eq!(
            go_time_string("2019-10-09T15:43:44Z"),
            "2019-10-09 15:43:44 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2019-10-09T15:43:44.5Z"),
            "2019-10-09 15:43:44.5 +0000 UTC"
        );
    }

    #[test]
    fn arns_of_siblings_share_account_and_region() {
        assert_eq!(
            sibling_arn(
                Some("arn:aws:ecs:us-east-1:012345678901:service/myclu/www"),
                "cluster/myclu"
            ),
            json!("arn:aws:ecs:us-east-1:012345678901:cluster/myclu")
        );
        assert_eq!(sibling_arn(None, "cluster/x"), Value::Null);
    }
}
