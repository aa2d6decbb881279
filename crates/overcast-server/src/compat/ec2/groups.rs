//! Security groups through the EC2 family: create, describe (by name, id or filter),
//! authorize and revoke rules (EC2's `IpPermissions`, or boto2's legacy top-level form,
//! whose source group alone means full TCP, UDP and ICMP access), delete. Each change is
//! the core call `/v1` makes.

use overcast_core::security_groups::{CreateGroupRequest, RuleChange};
use overcast_types::{
    Direction, Error, Operation, OperationStatus, Protocol, Role, Rule, SecurityGroup,
};
use std::collections::BTreeMap;
use std::time::Duration;

use super::actions::{account_of, Call};
use super::xml::Xml;
use super::{fault, Answer};

/// How long a group's creation is waited for: the answer must carry its id.
const CREATE_WAIT: Duration = Duration::from_secs(60);

/// The groups of the call's region the caller may see.
async fn groups(cx: &Call<'_>) -> Result<Vec<SecurityGroup>, Error> {
    let region = cx.region()?;
    Ok(cx
        .state
        .core
        .security_groups(cx.principal, cx.env(), Some(&region), false)
        .await?
        .items)
}

fn not_found(what: &str) -> Error {
    fault(
        "InvalidGroup.NotFound",
        format!("The security group '{what}' does not exist"),
    )
}

/// The group a call names by `GroupId` or `GroupName`.
async fn named_group(cx: &Call<'_>) -> Result<SecurityGroup, Error> {
    let all = groups(cx).await?;
    if let Some(id) = cx.params.text("GroupId") {
        return all
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| not_found(id));
    }
    let name = cx.params.text("GroupName").ok_or_else(|| {
        fault(
            "MissingParameter",
            "The request must contain the parameter GroupName or GroupId",
        )
    })?;
    all.into_iter()
        .find(|g| g.name == name)
        .ok_or_else(|| not_found(name))
}

/// The ids of groups a RunInstances names by name (`SecurityGroup.N`).
pub async fn ids_of_names(cx: &Call<'_>, names: &[String]) -> Result<Vec<String>, Error> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let all = groups(cx).await?;
    names
        .iter()
        .map(|name| {
            all.iter()
                .find(|g| &g.name == name)
                .map(|g| g.id.clone())
                .ok_or_else(|| not_found(name))
        })
        .collect()
}

/// Waits for a change to end and answers it, refusing one that failed with its error or
/// has not ended yet.
async fn ended(cx: &Call<'_>, operation: Operation, wait: Duration) -> Result<Operation, Error> {
    let ended = cx
        .state
        .core
        .wait(cx.principal, &operation.id, wait)
        .await?;
    match &ended.error {
        Some(error) => Err(error.into()),
        None if ended.status == OperationStatus::Succeeded => Ok(ended),
        None => Err(Error::unavailable(
            "operation_pending",
            format!("the change {} has not ended yet; it goes on", ended.id),
            5,
        )),
    }
}

pub async fn create(cx: &Call<'_>) -> Result<Answer, Error> {
    let name = cx.params.required("GroupName")?.to_string();
    let description = cx.params.required("GroupDescription")?.to_string();
    cx.check_dry_run(Role::Operator)?;
    let request = CreateGroupRequest {
        name,
        description,
        region: Some(cx.region()?),
        vpc_id: cx.params.text("VpcId").map(str::to_string),
        tags: BTreeMap::new(),
    };
    let operation = cx
        .state
        .core
        .create_security_group(cx.principal, cx.env(), &request, None)
        .await?;
    let operation = ended(cx, operation, CREATE_WAIT).await?;
    let id = operation
        .results
        .first()
        .map(|r| r.target.clone())
        .unwrap_or_default();
    let mut body = Xml::new();
    body.text("return", true).text("groupId", id);
    Ok(Answer::changed(body, operation))
}

pub async fn describe(cx: &Call<'_>) -> Result<Answer, Error> {
    let names = cx.params.list("GroupName")?;
    let ids = cx.params.list("GroupId")?;
    let mut filters = Vec::new();
    for (name, values) in cx.params.filters()? {
        match name.as_str() {
            "group-name" | "group-id" | "vpc-id" | "description" => filters.push((name, values)),
            other => {
                return Err(fault(
                    "InvalidParameterValue",
                    format!(
                        "The filter '{other}' is invalid; use group-name, group-id, vpc-id or description"
                    ),
                ))
            }
        }
    }
    let all = groups(cx).await?;
    for wanted in names.iter().chain(&ids) {
        if !all.iter().any(|g| &g.name == wanted || &g.id == wanted) {
            return Err(not_found(wanted));
        }
    }
    let keep = |g: &SecurityGroup| {
        (names.is_empty() || names.contains(&g.name))
            && (ids.is_empty() || ids.contains(&g.id))
            && filters.iter().all(|(name, values)| {
                let value = match name.as_str() {
                    "group-name" => Some(g.name.as_str()),
                    "group-id" => Some(g.id.as_str()),
                    "vpc-id" => g.vpc_id.as_deref(),
                    _ => Some(g.description.as_str()),
                };
                value.is_some_and(|v| values.iter().any(|w| w == v))
            })
    };
    let shown: Vec<&SecurityGroup> = all.iter().filter(|g| keep(g)).collect();
    let owner = account_of(&cx.principal.org);
    let mut body = Xml::new();
    body.set("securityGroupInfo", shown, |xml, group| {
        xml.text("ownerId", &owner)
            .text("groupId", &group.id)
            .text("groupName", &group.name)
            .text("groupDescription", &group.description)
            .maybe("vpcId", group.vpc_id.as_deref());
        for (element, direction) in [
            ("ipPermissions", Direction::Ingress),
            ("ipPermissionsEgress", Direction::Egress),
        ] {
            write_permissions(xml, element, direction, group, &all, &owner);
        }
        xml.set("tagSet", &group.tags, |xml, (key, value)| {
            xml.text("key", key).text("value", value);
        });
    });
    Ok(Answer::read(body))
}

/// A group's rules of one direction as EC2 shows them: one permission per protocol and
/// port range, with every source of it.
fn write_permissions(
    xml: &mut Xml,
    element: &str,
    direction: Direction,
    group: &SecurityGroup,
    all: &[SecurityGroup],
    owner: &str,
) {
    let mut permissions: Vec<(Ports, Vec<&Rule>)> = Vec::new();
    for rule in group.rules.iter().filter(|r| r.direction == direction) {
        let key = (rule.protocol, rule.from_port, rule.to_port);
        match permissions.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rules)) => rules.push(rule),
            None => permissions.push((key, vec![rule])),
        }
    }
    xml.set(
        element,
        permissions,
        |xml, ((protocol, from, to), rules)| {
            xml.text("ipProtocol", protocol_name(protocol))
                .maybe("fromPort", from)
                .maybe("toPort", to);
            let sources: Vec<&String> = rules
                .iter()
                .filter_map(|r| r.source_group.as_ref())
                .collect();
            xml.set("groups", sources, |xml, id| {
                xml.text("userId", owner).text("groupId", id).maybe(
                    "groupName",
                    all.iter().find(|g| &g.id == id).map(|g| g.name.as_str()),
                );
            });
            let (v4, v6): (Vec<&String>, Vec<&String>) = rules
                .iter()
                .filter_map(|r| r.cidr.as_ref())
                .partition(|c| !c.contains(':'));
            xml.set("ipRanges", v4, |xml, cidr| {
                xml.text("cidrIp", cidr);
            });
            xml.set("ipv6Ranges", v6, |xml, cidr| {
                xml.text("cidrIpv6", cidr);
            });
        },
    );
}

/// A permission's protocol and port range.
type Ports = (Protocol, Option<i32>, Option<i32>);

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        Protocol::All => "-1",
    }
}

fn protocol_of(text: &str) -> Result<Protocol, Error> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" | "6" => Ok(Protocol::Tcp),
        "udp" | "17" => Ok(Protocol::Udp),
        "icmp" | "1" => Ok(Protocol::Icmp),
        "-1" | "all" => Ok(Protocol::All),
        other => Err(fault(
            "InvalidParameterValue",
            format!("Invalid value '{other}' for IP protocol: use tcp, udp, icmp or -1"),
        )),
    }
}

/// One permission's protocol and ports, read under `prefix` (`IpPermissions.1.` or the
/// top level).
fn ports(cx: &Call<'_>, prefix: &str) -> Result<Ports, Error> {
    let protocol = protocol_of(cx.params.required(&format!("{prefix}IpProtocol"))?)?;
    let port = |name: &str| -> Result<Option<i32>, Error> {
        Ok(cx
            .params
            .number(&format!("{prefix}{name}"), -1, 65535)?
            .map(|p| p as i32))
    };
    if protocol == Protocol::All {
        return Ok((protocol, None, None));
    }
    Ok((protocol, port("FromPort")?, port("ToPort")?))
}

/// The rules a call asks for: each protocol and port range with each of its sources.
async fn rules(cx: &Call<'_>, direction: Direction) -> Result<Vec<Rule>, Error> {
    let rule = |(protocol, from, to): Ports| Rule {
        direction,
        protocol,
        from_port: from,
        to_port: to,
        cidr: None,
        source_group: None,
    };
    let mut found = Vec::new();
    let permissions = cx.params.members("IpPermissions")?;
    for permission in &permissions {
        let prefix = format!("{permission}.");
        let base = rule(ports(cx, &prefix)?);
        for cidr in ranges(cx, &format!("{prefix}IpRanges"), "CidrIp")?
            .into_iter()
            .chain(ranges(cx, &format!("{prefix}Ipv6Ranges"), "CidrIpv6")?)
        {
            found.push(Rule {
                cidr: Some(cidr),
                ..base.clone()
            });
        }
        for member in cx.params.members(&format!("{prefix}Groups"))? {
            let source = match cx.params.text(&format!("{member}.GroupId")) {
                Some(id) => id.to_string(),
                None => {
                    let name = cx.params.required(&format!("{member}.GroupName"))?;
                    ids_of_names(cx, &[name.to_string()]).await?.remove(0)
                }
            };
            found.push(Rule {
                source_group: Some(source),
                ..base.clone()
            });
        }
    }
    if permissions.is_empty() {
        // boto2's legacy form: the rule at the top level.
        if let Some(name) = cx.params.text("SourceSecurityGroupName") {
            let source = ids_of_names(cx, &[name.to_string()]).await?.remove(0);
            let all_of = |protocol, from, to| Rule {
                source_group: Some(source.clone()),
                ..rule((protocol, from, to))
            };
            found = match cx.params.text("IpProtocol") {
                Some(_) => vec![Rule {
                    source_group: Some(source.clone()),
                    ..rule(ports(cx, "")?)
                }],
                // A source group alone is full TCP, UDP and ICMP access from it.
                None => vec![
                    all_of(Protocol::Tcp, Some(0), Some(65535)),
                    all_of(Protocol::Udp, Some(0), Some(65535)),
                    all_of(Protocol::Icmp, Some(-1), Some(-1)),
                ],
            };
        } else if let Some(cidr) = cx.params.text("CidrIp") {
            found.push(Rule {
                cidr: Some(cidr.to_string()),
                ..rule(ports(cx, "")?)
            });
        }
    }
    if found.is_empty() {
        return Err(fault(
            "MissingParameter",
            "The request must contain IpPermissions (or IpProtocol with CidrIp or SourceSecurityGroupName)",
        ));
    }
    Ok(found)
}

/// The values of `{list}.N.{field}`.
fn ranges(cx: &Call<'_>, list: &str, field: &str) -> Result<Vec<String>, Error> {
    Ok(cx
        .params
        .members(list)?
        .iter()
        .filter_map(|m| cx.params.text(&format!("{m}.{field}")).map(str::to_string))
        .collect())
}

/// Authorize or revoke rules of one direction: one rule change each, as on `/v1`.
pub async fn change_rules(cx: &Call<'_>, direction: Direction, add: bool) -> Result<Answer, Error> {
    let group = named_group(cx).await?;
    let rules = rules(cx, direction).await?;
    cx.check_dry_run(Role::Operator)?;
    let mut last = None;
    for rule in rules {
        let change = if add {
            RuleChange::Add(rule)
        } else {
            RuleChange::Remove(rule)
        };
        let operation = cx
            .state
            .core
            .change_rule(cx.principal, cx.env(), &group.id, change, None)
            .await?;
        last = Some(ended(cx, operation, CREATE_WAIT).await?);
    }
    let mut body = Xml::new();
    body.text("return", true);
    Ok(match last {
        Some(operation) => Answer::changed(body, operation),
        None => Answer::read(body),
    })
}

pub async fn delete(cx: &Call<'_>) -> Result<Answer, Error> {
    let group = named_group(cx).await?;
    cx.check_dry_run(Role::Operator)?;
    let operation = cx
        .state
        .core
        .delete_security_group(cx.principal, cx.env(), &group.id, None)
        .await?;
    let operation = ended(cx, operation, CREATE_WAIT).await?;
    let mut body = Xml::new();
    body.text("return", true);
    Ok(Answer::changed(body, operation))
}
