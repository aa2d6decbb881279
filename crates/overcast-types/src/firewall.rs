//! Security groups and their rules, with the rule checks EC2 applies.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use utoipa::ToSchema;

use crate::Error;

/// A named set of firewall rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Its `overcast:org` tag, else the environment's default org.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    /// Every protocol and port.
    All,
}

/// One rule: traffic of a protocol and port range, from or to a CIDR or another group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub direction: Direction,
    pub protocol: Protocol,
    /// tcp/udp: the first port; icmp: the type (-1 for all). Absent for `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i32>,
    /// tcp/udp: the last port; icmp: the code (-1 for all). Absent for `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i32>,
    /// An IPv4 or IPv6 CIDR, e.g. `0.0.0.0/0`, `2001:db8::/32`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Another group's id, instead of a CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_group: Option<String>,
}

impl Rule {
    /// Checks the rule as EC2 would, naming the field at fault.
    pub fn validate(&self) -> Result<(), Error> {
        match (&self.cidr, &self.source_group) {
            (None, None) => return Err(Error::invalid("cidr", "give a cidr or a source_group")),
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "source_group",
                    "give a cidr or a source_group, not both",
                ))
            }
            (Some(cidr), None) => check_cidr(cidr)?,
            (None, Some(group)) => {
                if !group.starts_with("sg-") {
                    return Err(Error::invalid(
                        "source_group",
                        format!("`{group}` is not a security group id (sg-...)"),
                    ));
                }
            }
        }
        match self.protocol {
            Protocol::All => {
                if self.from_port.is_some() || self.to_port.is_some() {
                    return Err(Error::invalid(
                        "from_port",
                        "protocol all covers every port: give no ports",
                    ));
                }
            }
            Protocol::Tcp | Protocol::Udp => {
                let (from, to) = match (self.from_port, self.to_port) {
                    (Some(from), Some(to)) => (from, to),
                    (None, _) => {
                        return Err(Error::invalid(
                            "from_port",
                            "tcp and udp rules need from_port and to_port",
                        ))
                    }
                    (_, None) => {
                        return Err(Error::invalid(
                            "to_port",
                            "tcp and udp rules need from_port and to_port",
                        ))
                    }
                };
                for (field, port) in [("from_port", from), ("to_port", to)] {
                    if !(0..=65535).contains(&port) {
                        return Err(Error::invalid(
                            field,
                            format!("{port} is not a port from 0 to 65535"),
                        ));
                    }
                }
                if from > to {
                    return Err(Error::invalid(
                        "to_port",
                        format!("{to} is below from_port {from}"),
                    ));
                }
            }
            Protocol::Icmp => {
                for (field, value) in [("from_port", self.from_port), ("to_port", self.to_port)] {
                    let value = value.ok_or_else(|| {
                        Error::invalid(
                            field,
                            "icmp rules need from_port (type) and to_port (code); -1 for all",
                        )
                    })?;
                    if !(-1..=255).contains(&value) {
                        return Err(Error::invalid(
                            field,
                            format!("{value} is not an icmp type or code from -1 to 255"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn is_ipv6(&self) -> bool {
        self.cidr.as_deref().is_some_and(|c| c.contains(':'))
    }
}

fn check_cidr(cidr: &str) -> Result<(), Error> {
    let bad = || {
        Error::invalid(
            "cidr",
            format!("`{cidr}` is not an IPv4 or IPv6 CIDR like 10.0.0.0/16 or 2001:db8::/32"),
        )
    };
    let (address, prefix) = cidr.split_once('/').ok_or_else(bad)?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if address.parse::<Ipv4Addr>().is_ok() {
        32
    } else if address.parse::<Ipv6Addr>().is_ok() {
        128
    } else {
        return Err(bad());
    };
    if prefix > max {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: Protocol, from: Option<i32>, to: Option<i32>, cidr: Option<&str>) -> Rule {
        Rule {
            direction: Direction::Ingress,
            protocol,
            from_port: from,
            to_port: to,
            cidr: cidr.map(Into::into),
            source_group: None,
        }
    }

    #[test]
    fn good_rules_pass() {
        rule(Protocol::Tcp, Some(22), Some(22), Some("10.0.0.0/8"))
            .validate()
            .unwrap();
        rule(Protocol::Udp, Some(0), Some(65535), Some("2001:db8::/32"))
            .validate()
            .unwrap();
        rule(Protocol::Icmp, Some(-1), Some(-1), Some("0.0.0.0/0"))
            .validate()
            .unwrap();
        rule(Protocol::All, None, None, Some("0.0.0.0/0"))
            .validate()
            .unwrap();
        assert!(rule(Protocol::Tcp, Some(1), Some(2), Some("::/0")).is_ipv6());
    }

    #[test]
    fn bad_rules_name_the_field() {
        let field = |r: Rule| r.validate().unwrap_err().field.unwrap();
        assert_eq!(
            field(rule(Protocol::Tcp, Some(22), Some(22), Some("10.0.0.0/33"))),
            "cidr"
        );
        assert_eq!(
            field(rule(
                Protocol::Tcp,
                Some(22),
                Some(22),
                Some("10.0.0.300/8")
            )),
            "cidr"
        );
        assert_eq!(
            field(rule(Protocol::Tcp, Some(22), Some(22), Some("10.0.0.0"))),
            "cidr"
        );
        assert_eq!(field(rule(Protocol::Tcp, Some(22), Some(22), None)), "cidr");
        assert_eq!(
            field(rule(Protocol::Tcp, Some(80), Some(22), Some("10.0.0.0/8"))),
            "to_port"
        );
        assert_eq!(
            field(rule(
                Protocol::Tcp,
                Some(70000),
                Some(70001),
                Some("10.0.0.0/8")
            )),
            "from_port"
        );
        assert_eq!(
            field(rule(Protocol::Udp, None, Some(1), Some("10.0.0.0/8"))),
            "from_port"
        );
        assert_eq!(
            field(rule(Protocol::All, Some(1), None, Some("10.0.0.0/8"))),
            "from_port"
        );
        assert_eq!(
            field(rule(Protocol::Icmp, Some(300), Some(0), Some("10.0.0.0/8"))),
            "from_port"
        );
        let mut both = rule(Protocol::Tcp, Some(1), Some(1), Some("10.0.0.0/8"));
        both.source_group = Some("sg-1".into());
        assert_eq!(field(both), "source_group");
    }
}
