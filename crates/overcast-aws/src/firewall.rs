//! EC2 security groups as the `Firewall` capability.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup as Ec2Group, TagSpecification,
    UserIdGroupPair,
};
use futures::future::try_join_all;
use overcast_provider::{Firewall, ProviderError};
use overcast_types::{Direction, Protocol, Rule, SecurityGroup};
use std::collections::BTreeMap;

use crate::compute::to_tags;
use crate::errors::from_sdk;
use crate::{one_attempt_ec2, AwsProvider};

/// Sends one authorize or revoke call for a group's rule, reported to the observer.
macro_rules! rule_call {
    ($provider:ident, $ec2:ident, $call:ident, $action:literal, $region:ident, $group:ident, $permission:ident) => {{
        let result = $ec2
            .$call()
            .group_id($group)
            .ip_permissions($permission)
            .send()
            .await;
        $provider
            .observe($action, $region, result.map_err(from_sdk))
            .map(|_| ())
    }};
}

#[async_trait]
impl Firewall for AwsProvider {
    async fn list_groups(
        &self,
        region: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<SecurityGroup>, ProviderError> {
        let regions = match region {
            Some(region) => vec![region.to_string()],
            None => self.settings.regions.clone(),
        };
        let per_region =
            try_join_all(regions.iter().map(|region| self.groups_of(region, ids))).await?;
        Ok(per_region.into_iter().flatten().collect())
    }

    async fn create_group(
        &self,
        region: &str,
        name: &str,
        description: &str,
        vpc_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<SecurityGroup, ProviderError> {
        let ec2 = self.ec2(region).await?;
        let result = ec2
            .create_security_group()
            .group_name(name)
            .description(description)
            .set_vpc_id(vpc_id.map(str::to_string))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroup)
                    .set_tags(Some(to_tags(tags)))
                    .build(),
            )
            .customize()
            .config_override(one_attempt_ec2())
            .send()
            .await;
        let created = self.observe("CreateSecurityGroup", region, result.map_err(from_sdk))?;
        let id = created.group_id().unwrap_or_default().to_string();
        let mut found = self.groups_of(region, std::slice::from_ref(&id)).await?;
        found.pop().ok_or_else(|| {
            ProviderError::new(
                overcast_provider::ProviderErrorKind::Refused,
                "backend_refused",
                format!("security group {id} was created but cannot be found"),
            )
        })
    }

    async fn delete_group(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        let ec2 = self.ec2(region).await?;
        let result = ec2.delete_security_group().group_id(id).send().await;
        self.observe("DeleteSecurityGroup", region, result.map_err(from_sdk))?;
        Ok(())
    }

    async fn add_rule(
        &self,
        region: &str,
        group_id: &str,
        rule: &Rule,
    ) -> Result<(), ProviderError> {
        let ec2 = self.ec2(region).await?;
        let permission = to_permission(rule);
        let result = match rule.direction {
            Direction::Ingress => {
                rule_call!(
                    self,
                    ec2,
                    authorize_security_group_ingress,
                    "AuthorizeSecurityGroupIngress",
                    region,
                    group_id,
                    permission
                )
            }
            Direction::Egress => {
                rule_call!(
                    self,
                    ec2,
                    authorize_security_group_egress,
                    "AuthorizeSecurityGroupEgress",
                    region,
                    group_id,
                    permission
                )
            }
        };
        unless_already(result, "InvalidPermission.Duplicate")
    }

    async fn remove_rule(
        &self,
        region: &str,
        group_id: &str,
        rule: &Rule,
    ) -> Result<(), ProviderError> {
        let ec2 = self.ec2(region).await?;
        let permission = to_permission(rule);
        let result = match rule.direction {
            Direction::Ingress => {
                rule_call!(
                    self,
                    ec2,
                    revoke_security_group_ingress,
                    "RevokeSecurityGroupIngress",
                    region,
                    group_id,
                    permission
                )
            }
            Direction::Egress => {
                rule_call!(
                    self,
                    ec2,
                    revoke_security_group_egress,
                    "RevokeSecurityGroupEgress",
                    region,
                    group_id,
                    permission
                )
            }
        };
        unless_already(result, "InvalidPermission.NotFound")
    }
}

/// A rule change that EC2 answers with `already` was already so: no error.
fn unless_already(result: Result<(), ProviderError>, already: &str) -> Result<(), ProviderError> {
    match result {
        Err(e) if e.backend_code.as_deref() == Some(already) => Ok(()),
        other => other,
    }
}

impl AwsProvider {
    async fn groups_of(
        &self,
        region: &str,
        ids: &[String],
    ) -> Result<Vec<SecurityGroup>, ProviderError> {
        let ec2 = self.ec2(region).await?;
        let mut groups = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let mut request = ec2
                .describe_security_groups()
                .set_next_token(next_token.clone());
            if ids.is_empty() {
                request = request.max_results(1000);
            } else {
                request = request.set_group_ids(Some(ids.to_vec()));
            }
            let page = match self.observe(
                "DescribeSecurityGroups",
                region,
                request.send().await.map_err(from_sdk),
            ) {
                Ok(page) => page,
                // Asked for ids, a region that lacks one answers "not found": not here.
                Err(e) if !ids.is_empty() && e.code == "security_group_not_found" => {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(e),
            };
            groups.extend(page.security_groups().iter().map(|g| to_group(region, g)));
            next_token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if next_token.is_none() {
                return Ok(groups);
            }
        }
    }
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        Protocol::All => "-1",
    }
}

fn to_permission(rule: &Rule) -> IpPermission {
    let mut permission = IpPermission::builder()
        .ip_protocol(protocol_name(rule.protocol))
        .set_from_port(rule.from_port)
        .set_to_port(rule.to_port);
    match (&rule.cidr, &rule.source_group) {
        (Some(cidr), _) if rule.is_ipv6() => {
            permission = permission.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(cidr).build());
        }
        (Some(cidr), _) => {
            permission = permission.ip_ranges(IpRange::builder().cidr_ip(cidr).build())
        }
        (None, Some(group)) => {
            permission =
                permission.user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build());
        }
        (None, None) => {}
    }
    permission.build()
}

/// One EC2 permission can hold several sources; overcast shows one rule per source.
fn to_rules(direction: Direction, permission: &IpPermission) -> Vec<Rule> {
    let protocol = match permission.ip_protocol() {
        Some("tcp") | Some("6") => Protocol::Tcp,
        Some("udp") | Some("17") => Protocol::Udp,
        Some("icmp") | Some("1") => Protocol::Icmp,
        _ => Protocol::All,
    };
    let (from_port, to_port) = match protocol {
        Protocol::All => (None, None),
        _ => (permission.from_port(), permission.to_port()),
    };
    let rule = |cidr: Option<String>, source_group: Option<String>| Rule {
        direction,
        protocol,
        from_port,
        to_port,
        cidr,
        source_group,
    };
    let mut rules = Vec::new();
    rules.extend(
        permission
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip())
            .map(|c| rule(Some(c.to_string()), None)),
    );
    rules.extend(
        permission
            .ipv6_ranges()
            .iter()
            .filter_map(|r| r.cidr_ipv6())
            .map(|c| rule(Some(c.to_string()), None)),
    );
    rules.extend(
        permission
            .user_id_group_pairs()
            .iter()
            .filter_map(|p| p.group_id())
            .map(|g| rule(None, Some(g.to_string()))),
    );
    rules
}

fn to_group(region: &str, group: &Ec2Group) -> SecurityGroup {
    let mut rules: Vec<Rule> = group
        .ip_permissions()
        .iter()
        .flat_map(|p| to_rules(Direction::Ingress, p))
        .collect();
    rules.extend(
        group
            .ip_permissions_egress()
            .iter()
            .flat_map(|p| to_rules(Direction::Egress, p)),
    );
    SecurityGroup {
        id: group.group_id().unwrap_or_default().to_string(),
        name: group.group_name().unwrap_or_default().to_string(),
        description: group.description().unwrap_or_default().to_string(),
        region: region.to_string(),
        vpc_id: group.vpc_id().map(str::to_string),
        rules,
        tags: group
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        org: None,
    }
}
