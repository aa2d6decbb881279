//! How the CLI prints what the server answered: aligned tables for people, JSON or YAML
//! for scripts.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// A table column: its header and the dotted path of the value in each row.
pub type Column = (&'static str, &'static str);

pub const ENVIRONMENTS: &[Column] = &[
    ("NAME", "name"),
    ("PROVIDER", "provider"),
    ("REGIONS", "regions"),
    ("STAGES", "stages.stages"),
    ("REACHABLE", "reachable"),
    ("REASON", "reason"),
];
pub const MACHINE_TYPES: &[Column] = &[
    ("NAME", "name"),
    ("AWS TYPE", "aws.instance_type"),
    ("CPUS", "qemu.cpus"),
    ("MEMORY MB", "qemu.memory_mb"),
    ("DISK GB", "qemu.disk_gb"),
    ("DESCRIPTION", "description"),
];
pub const PLAN_TARGETS: &[Column] = &[
    ("ID", "id"),
    ("REGION", "region"),
    ("STATE", "state"),
    ("STAGE", "stage"),
    ("TO STAGE", "to_stage"),
];
pub const PLAN_SKIPPED: &[Column] = &[("ID", "id"), ("REASON", "reason")];
pub const KEY_PAIRS: &[Column] = &[
    ("NAME", "name"),
    ("REGION", "region"),
    ("TYPE", "key_type"),
    ("FINGERPRINT", "fingerprint"),
    ("ORG", "org"),
];
pub const IMAGES: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("REGION", "region"),
    ("STATE", "state"),
    ("CREATED", "created_at"),
    ("ORG", "org"),
];
pub const SECURITY_GROUPS: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("REGION", "region"),
    ("VPC", "vpc_id"),
    ("ORG", "org"),
    ("DESCRIPTION", "description"),
];
pub const RULES: &[Column] = &[
    ("DIRECTION", "direction"),
    ("PROTOCOL", "protocol"),
    ("FROM", "from_port"),
    ("TO", "to_port"),
    ("CIDR", "cidr"),
    ("SOURCE GROUP", "source_group"),
];
pub const REGIONS: &[Column] = &[("REGION", "name"), ("ZONES", "zones")];
pub const INSTANCES: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("REGION", "region"),
    ("STATE", "state"),
    ("STAGE", "stage"),
    ("TYPE", "instance_type"),
    ("PRIVATE IP", "private_ip"),
    ("ORG", "org"),
];
pub const OPERATIONS: &[Column] = &[
    ("ID", "id"),
    ("KIND", "kind"),
    ("STATUS", "status"),
    ("PROGRESS", "progress"),
    ("TARGET", "target"),
    ("ORG", "org"),
    ("BY", "requested_by"),
    ("CREATED", "created_at"),
];
pub const TOKENS: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("ORG", "org"),
    ("ROLE", "role"),
    ("CREATED", "created_at"),
    ("EXPIRES", "expires_at"),
    ("REVOKED", "revoked_at"),
];
pub const ACCESS_KEYS: &[Column] = &[
    ("ID", "id"),
    ("TOKEN", "token_id"),
    ("ORG", "org"),
    ("ENV", "environment"),
    ("CREATED", "created_at"),
    ("REVOKED", "revoked_at"),
];
pub const AUDIT: &[Column] = &[
    ("AT", "at"),
    ("TOKEN", "token_name"),
    ("ORG", "org"),
    ("METHOD", "method"),
    ("TARGET", "target"),
    ("STATUS", "status_code"),
    ("OUTCOME", "outcome"),
    ("OPERATION", "operation_id"),
];
pub const EVENTS: &[Column] = &[
    ("AT", "at"),
    ("ENVIRONMENT", "environment"),
    ("KIND", "kind"),
    ("RESOURCE", "resource"),
    ("ORG", "org"),
    ("DETAIL", "detail"),
];
pub const BUCKETS: &[Column] = &[
    ("NAME", "name"),
    ("REGION", "region"),
    ("CREATED", "created_at"),
    ("ORG", "org"),
];
pub const OBJECTS: &[Column] = &[
    ("SIZE", "size"),
    ("LAST MODIFIED", "last_modified"),
    ("KEY", "key"),
];
pub const SECRETS: &[Column] = &[
    ("NAME", "name"),
    ("REGION", "region"),
    ("CHANGED", "last_changed_at"),
    ("DELETION", "deletion_date"),
    ("ORG", "org"),
];
pub const PARAMETERS: &[Column] = &[
    ("NAME", "name"),
    ("TYPE", "type"),
    ("VERSION", "version"),
    ("MODIFIED", "last_modified_at"),
];
pub const PARAMETER_VERSIONS: &[Column] = &[
    ("VERSION", "version"),
    ("TYPE", "type"),
    ("MODIFIED", "last_modified_at"),
    ("DESCRIPTION", "description"),
];
pub const CLUSTERS: &[Column] = &[
    ("NAME", "name"),
    ("REGION", "region"),
    ("STATUS", "status"),
    ("SERVICES", "active_services"),
    ("RUNNING", "running_tasks"),
    ("PENDING", "pending_tasks"),
    ("ORG", "org"),
];
pub const TASK_DEFINITIONS: &[Column] = &[
    ("FAMILY", "family"),
    ("REVISION", "revision"),
    ("CPU", "cpu"),
    ("MEMORY", "memory"),
    ("ORG", "org"),
];
pub const SERVICES: &[Column] = &[
    ("NAME", "name"),
    ("STATUS", "status"),
    ("TASK DEFINITION", "task_definition"),
    ("DESIRED", "desired_count"),
    ("RUNNING", "running_count"),
    ("PENDING", "pending_count"),
];
pub const TASKS: &[Column] = &[
    ("ID", "id"),
    ("TASK DEFINITION", "task_definition"),
    ("SERVICE", "service"),
    ("STATUS", "last_status"),
    ("DESIRED", "desired_status"),
    ("STARTED", "started_at"),
];
pub const REGISTRIES: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("NAMESPACE", "namespace"),
    ("TTL", "dns_ttl"),
    ("INSTANCES", "instance_count"),
    ("ORG", "org"),
];
pub const FIELDS: &[Column] = &[];

/// Renders `value` in `format`. Tables take a list (or a page's `items`) and print one row
/// per item; a single object prints as `key: value` lines.
pub fn render(value: &Value, format: Format, columns: &[Column]) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(value).unwrap_or_default() + "\n",
        Format::Yaml => serde_yaml::to_string(value).unwrap_or_default(),
        Format::Table => {
            let rows = match value {
                Value::Array(items) => Some(items),
                Value::Object(map) => map.get("items").and_then(Value::as_array),
                _ => None,
            };
            match rows {
                Some(rows) if !columns.is_empty() => {
                    let mut out = table(rows, columns);
                    if let Some(next) = value.get("next_page_token").and_then(Value::as_str) {
                        out += &format!("(more: --page-token {next})\n");
                    }
                    out
                }
                _ => fields(value),
            }
        }
    }
}

fn table(rows: &[Value], columns: &[Column]) -> String {
    if rows.is_empty() {
        return "(none)\n".into();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|(_, path)| cell(lookup(row, path)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (header, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(columns.iter().map(|(h, _)| *h).collect());
    for row in &cells {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// `key: value` lines for one object, nested objects flattened with dots.
fn fields(value: &Value) -> String {
    let mut out = String::new();
    flatten("", value, &mut out);
    out
}

fn flatten(prefix: &str, value: &Value, out: &mut String) {
    match value {
        Value::Object(map) if !is_progress(value) => {
            for (key, inner) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, inner, out);
            }
        }
        _ => *out += &format!("{prefix}: {}\n", cell(Some(value))),
    }
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

fn is_progress(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.len() == 2 && m.contains_key("done") && m.contains_key("total"))
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".into(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| cell(Some(v)))
            .collect::<Vec<_>>()
            .join(","),
        Some(v) if is_progress(v) => format!("{}/{}", v["done"], v["total"]),
        Some(v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Compares with `tests/golden/NAME`; `OVERCAST_UPDATE_GOLDEN=1` rewrites it.
    fn golden(name: &str, actual: &str) {
        let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("OVERCAST_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            actual, expected,
            "{name} differs: OVERCAST_UPDATE_GOLDEN=1 rewrites it"
        );
    }

    fn operations_page() -> Value {
        json!({
            "items": [
                {"id": "op_01ja", "kind": "token.create", "status": "succeeded", "progress": {"done": 1, "total": 1},
                 "target": "tok_01jb", "org": "acme", "requested_by": "bootstrap-admin",
                 "created_at": "2026-11-22T10:00:00Z", "results": [], "cancel_requested": false},
                {"id": "op_01j9", "kind": "token.revoke", "status": "running", "progress": {"done": 0, "total": 1},
                 "target": "tok_01j0", "org": "platform-team", "requested_by": "ci",
                 "created_at": "2026-11-22T09:59:00Z", "results": [], "cancel_requested": false}
            ],
            "next_page_token": "op_01j9"
        })
    }

    #[test]
    fn operations_as_a_table() {
        golden(
            "operations.table",
            &render(&operations_page(), Format::Table, OPERATIONS),
        );
    }

    #[test]
    fn operations_as_yaml() {
        golden(
            "operations.yaml",
            &render(&operations_page(), Format::Yaml, OPERATIONS),
        );
    }

    #[test]
    fn one_operation_as_fields() {
        golden(
            "operation.fields",
            &render(&operations_page()["items"][0], Format::Table, FIELDS),
        );
    }

    #[test]
    fn environments_as_a_table() {
        let envs = json!([
            {"name": "aws-dev", "provider": "aws", "regions": ["eu-west-1", "us-east-1"],
             "stages": {"stages": ["dev", "test", "prod"], "tag_key": "config"}, "reachable": true, "capabilities": ["compute"]},
            {"name": "local", "provider": "qemu", "regions": [], "stages": {"stages": ["dev", "prod"], "tag_key": "stage"},
             "reachable": false, "reason": "qemu-system-x86_64 not found", "capabilities": []}
        ]);
        golden(
            "environments.table",
            &render(&envs, Format::Table, ENVIRONMENTS),
        );
    }

    #[test]
    fn instances_as_a_table() {
        let page = json!({"items": [
            {"id": "i-0a1b2c3d4e5f60718", "name": "web-1", "region": "eu-west-1", "state": "running", "stage": "dev",
             "instance_type": "t3.micro", "private_ip": "10.0.0.12", "org": "acme", "environment": "aws-dev", "tags": {}},
            {"id": "i-0f9e8d7c6b5a40312", "region": "us-east-1", "state": "stopped", "stage": "prod",
             "instance_type": "m5.large", "org": "acme", "environment": "aws-dev", "tags": {}}
        ]});
        golden("instances.table", &render(&page, Format::Table, INSTANCES));
    }

    #[test]
    fn an_empty_list_says_so() {
        assert_eq!(
            render(&json!({"items": []}), Format::Table, TOKENS),
            "(none)\n"
        );
    }
}
