//! Security groups as the `Firewall` capability: groups per region with EC2's rules (a new
//! group lets all traffic out; a name is taken once per VPC; a group an instance or another
//! group's rule uses cannot be deleted).

use async_trait::async_trait;
use overcast_provider::{Firewall, ProviderError, ProviderErrorKind as Kind};
use overcast_types::{Direction, Protocol, Rule, SecurityGroup};
use std::collections::BTreeMap;

use crate::compute::check_tags;
use crate::errors::{group_not_found, in_use, invalid, refusal};
use crate::world::World;
use crate::SimProvider;

pub(crate) struct GroupRecord {
    id: String,
    name: String,
    description: String,
    vpc_id: Option<String>,
    rules: Vec<Rule>,
    pub tags: BTreeMap<String, String>,
}

impl GroupRecord {
    fn to_group(&self, region: &str) -> SecurityGroup {
        SecurityGroup {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            region: region.to_string(),
            vpc_id: self.vpc_id.clone(),
            rules: self.rules.clone(),
            tags: self.tags.clone(),
            org: None,
        }
    }
}

/// The rule EC2 gives every new group: all traffic out.
fn all_out() -> Rule {
    Rule {
        direction: Direction::Egress,
        protocol: Protocol::All,
        from_port: None,
        to_port: None,
        cidr: Some("0.0.0.0/0".into()),
        source_group: None,
    }
}

/// The EC2 action that adds (`true`) or removes a rule of this direction.
fn rule_action(rule: &Rule, add: bool) -> &'static str {
    match (rule.direction, add) {
        (Direction::Ingress, true) => "AuthorizeSecurityGroupIngress",
        (Direction::Egress, true) => "AuthorizeSecurityGroupEgress",
        (Direction::Ingress, false) => "RevokeSecurityGroupIngress",
        (Direction::Egress, false) => "RevokeSecurityGroupEgress",
    }
}

impl SimProvider {
    fn make_group(
        &self,
        world: &mut World,
        region_name: &str,
        name: &str,
        description: &str,
        vpc_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<SecurityGroup, ProviderError> {
        let World { ids, regions, .. } = world;
        let region = regions
            .get_mut(region_name)
            .ok_or_else(|| invalid("region", format!("no region {region_name}")))?;
        if name.trim().is_empty() {
            return Err(invalid("name", "a security group needs a name"));
        }
        if region
            .groups
            .values()
            .any(|g| g.name == name && g.vpc_id.as_deref() == vpc_id)
        {
            return Err(refusal(
                Kind::Conflict,
                "security_group_exists",
                "InvalidGroup.Duplicate",
                format!("The security group '{name}' already exists"),
            )
            .with_field("name"));
        }
        check_tags(tags)?;
        let id = ids.next("sg");
        let record = GroupRecord {
            id: id.clone(),
            name: name.to_string(),
            description: description.to_string(),
            vpc_id: vpc_id.map(str::to_string),
            rules: vec![all_out()],
            tags: tags.clone(),
        };
        let group = record.to_group(region_name);
        region.groups.insert(id, record);
        Ok(group)
    }

    fn change_rule(
        &self,
        world: &mut World,
        region_name: &str,
        group_id: &str,
        rule: &Rule,
        add: bool,
    ) -> Result<(), ProviderError> {
        let region = world.region_mut(region_name)?;
        if let Some(source) = rule.source_group.as_deref() {
            if add && !region.groups.contains_key(source) {
                return Err(group_not_found(source));
            }
        }
        let group = region
            .groups
            .get_mut(group_id)
            .ok_or_else(|| group_not_found(group_id))?;
        // A rule already so is no error either way.
        let at = group.rules.iter().position(|r| r == rule);
        match (add, at) {
            (true, None) => group.rules.push(rule.clone()),
            (false, Some(at)) => {
                group.rules.remove(at);
            }
            _ => {}
        }
        Ok(())
    }
}

#[async_trait]
impl Firewall for SimProvider {
    async fn list_groups(
        &self,
        region: Option<&str>,
        ids: &[String],
    ) -> Result<Vec<SecurityGroup>, ProviderError> {
        let mut groups = Vec::new();
        for region in self.regions_of(region) {
            let found = self
                .run("DescribeSecurityGroups", &region, |world| {
                    Ok(world
                        .region(&region)?
                        .groups
                        .values()
                        .filter(|g| ids.is_empty() || ids.contains(&g.id))
                        .map(|g| g.to_group(&region))
                        .collect::<Vec<_>>())
                })
                .await?;
            groups.extend(found);
        }
        Ok(groups)
    }

    async fn create_group(
        &self,
        region: &str,
        name: &str,
        description: &str,
        vpc_id: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Result<SecurityGroup, ProviderError> {
        self.run("CreateSecurityGroup", region, |world| {
            self.make_group(world, region, name, description, vpc_id, tags)
        })
        .await
    }

    async fn delete_group(&self, region: &str, id: &str) -> Result<(), ProviderError> {
        self.run("DeleteSecurityGroup", region, |world| {
            let now = world.clock.now();
            let region = world.region_mut(region)?;
            if !region.groups.contains_key(id) {
                return Err(group_not_found(id));
            }
            if let Some(instance) = region.instances.iter().find(|(_, i)| i.uses_group(id, now)) {
                return Err(in_use(format!(
                    "resource {id} has a dependent object: instance {}",
                    instance.0
                )));
            }
            if let Some(other) = region.groups.values().find(|g| {
                g.id != id
                    && g.rules
                        .iter()
                        .any(|r| r.source_group.as_deref() == Some(id))
            }) {
                return Err(in_use(format!(
                    "resource {id} has a dependent object: a rule of {}",
                    other.id
                )));
            }
            region.groups.remove(id);
            Ok(())
        })
        .await
    }

    async fn add_rule(
        &self,
        region: &str,
        group_id: &str,
        rule: &Rule,
    ) -> Result<(), ProviderError> {
        self.run(rule_action(rule, true), region, |world| {
            self.change_rule(world, region, group_id, rule, true)
        })
        .await
    }

    async fn remove_rule(
        &self,
        region: &str,
        group_id: &str,
        rule: &Rule,
    ) -> Result<(), ProviderError> {
        self.run(rule_action(rule, false), region, |world| {
            self.change_rule(world, region, group_id, rule, false)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{provider, settings};
    use overcast_provider::{Compute, LaunchSpec};

    fn ssh() -> Rule {
        Rule {
            direction: Direction::Ingress,
            protocol: Protocol::Tcp,
            from_port: Some(22),
            to_port: Some(22),
            cidr: Some("10.0.0.0/8".into()),
            source_group: None,
        }
    }

    #[tokio::test]
    async fn groups_keep_their_rules_and_refuse_to_go_while_used() {
        let (sim, calls) = provider(settings(0.0));
        let tags = BTreeMap::new();
        let web = sim
            .create_group("sim-1", "web", "web servers", None, &tags)
            .await
            .unwrap();
        assert_eq!(web.rules, [all_out()]);
        let duplicate = sim
            .create_group("sim-1", "web", "again", None, &tags)
            .await
            .unwrap_err();
        assert_eq!(duplicate.code, "security_group_exists");
        sim.create_group("sim-2", "web", "other region", None, &tags)
            .await
            .unwrap();
        sim.add_rule("sim-1", &web.id, &ssh()).await.unwrap();
        sim.add_rule("sim-1", &web.id, &ssh()).await.unwrap();
        assert_eq!(calls.count("AuthorizeSecurityGroupIngress", "ok"), 2);
        let listed = sim.list_groups(Some("sim-1"), &[]).await.unwrap();
        assert_eq!(listed[0].rules, [all_out(), ssh()]);
        let db = sim
            .create_group("sim-1", "db", "databases", None, &tags)
            .await
            .unwrap();
        let from_web = Rule {
            cidr: None,
            source_group: Some(web.id.clone()),
            ..ssh()
        };
        sim.add_rule("sim-1", &db.id, &from_web).await.unwrap();
        let used = sim.delete_group("sim-1", &web.id).await.unwrap_err();
        assert_eq!(used.code, "in_use");
        sim.remove_rule("sim-1", &db.id, &from_web).await.unwrap();
        sim.remove_rule("sim-1", &db.id, &from_web).await.unwrap();
        let spec = LaunchSpec {
            region: "sim-1".into(),
            image: crate::BASE_IMAGE.into(),
            instance_type: "sim.small".into(),
            min_count: 1,
            max_count: 1,
            key_pair: None,
            security_groups: vec![web.id.clone()],
            subnet: None,
            zone: None,
            user_data: None,
            tags: BTreeMap::new(),
            client_token: String::new(),
            size: None,
            name: None,
        };
        let instance = sim.run_instances(&spec).await.unwrap().remove(0);
        assert_eq!(instance.security_groups, std::slice::from_ref(&web.id));
        let used = sim.delete_group("sim-1", &web.id).await.unwrap_err();
        assert_eq!(used.backend_code.as_deref(), Some("DependencyViolation"));
        sim.act(
            "sim-1",
            &[instance.id],
            overcast_provider::Action::Terminate,
        )
        .await
        .unwrap();
        sim.delete_group("sim-1", &web.id).await.unwrap();
        let gone = sim.delete_group("sim-1", &web.id).await.unwrap_err();
        assert_eq!(gone.code, "security_group_not_found");
        let orphan = sim.add_rule("sim-1", &web.id, &ssh()).await.unwrap_err();
        assert_eq!(orphan.code, "security_group_not_found");
    }
}
