//! What PVE says about its cluster, read into overcast's terms: the guests of
//! `/cluster/resources` and the nodes of `/nodes`. PVE sends some numbers as strings
//! (`vmid`, `template` and `cores` after an update, `/cluster/nextid`), so every number is
//! read either way rather than trusting one typing.

use serde_json::Value;
use std::collections::BTreeMap;

use crate::tags::from_pve_tags;

/// A number PVE sends as a number or as a string.
pub fn number(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A flag PVE sends as `1`, `"1"` or `true`.
fn flag(value: &Value) -> bool {
    value.as_bool().unwrap_or(false) || number(value) == Some(1)
}

/// A QEMU guest of the cluster: a VM, or a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Guest {
    pub vmid: u64,
    pub node: String,
    pub name: Option<String>,
    /// `running`, `stopped`, `paused`, `suspended`, or `unknown` (its node is down).
    pub status: String,
    pub template: bool,
    /// What holds the VM (`backup`, `migrate`, `clone`, ...).
    pub lock: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Bytes of memory it is given.
    pub maxmem: u64,
}

impl Guest {
    /// One entry of `/cluster/resources?type=vm`; containers and malformed entries are none.
    pub fn from_resource(resource: &Value) -> Option<Guest> {
        if resource["type"] != "qemu" {
            return None;
        }
        Some(Guest {
            vmid: number(&resource["vmid"])?,
            node: resource["node"].as_str()?.to_string(),
            name: resource["name"].as_str().map(str::to_string),
            status: resource["status"].as_str().unwrap_or("unknown").to_string(),
            template: flag(&resource["template"]),
            lock: resource["lock"]
                .as_str()
                .filter(|l| !l.is_empty())
                .map(str::to_string),
            tags: resource["tags"]
                .as_str()
                .map(from_pve_tags)
                .unwrap_or_default(),
            maxmem: number(&resource["maxmem"]).unwrap_or(0),
        })
    }

    pub fn id(&self) -> String {
        self.vmid.to_string()
    }

    /// Whether `wanted` names it, by VM id or by name.
    pub fn is_named(&self, wanted: &str) -> bool {
        self.id() == wanted || self.name.as_deref() == Some(wanted)
    }
}

/// Every QEMU guest of `/cluster/resources?type=vm`.
pub fn guests(resources: &[Value]) -> Vec<Guest> {
    resources.iter().filter_map(Guest::from_resource).collect()
}

/// A node and how much of its memory is taken, from `/nodes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub online: bool,
    pub mem: u64,
    pub maxmem: u64,
}

pub fn nodes(listing: &[Value]) -> Vec<Node> {
    listing
        .iter()
        .filter_map(|n| {
            Some(Node {
                name: n["node"].as_str()?.to_string(),
                online: n["status"] == "online",
                mem: number(&n["mem"]).unwrap_or(0),
                maxmem: number(&n["maxmem"]).unwrap_or(0),
            })
        })
        .collect()
}

/// The node with the smallest share of its memory taken, counting what this launch has
/// already placed there (`placed`, bytes by node); ties go to the first by name.
pub fn least_loaded<'a>(
    candidates: &'a [Node],
    placed: &BTreeMap<String, u64>,
) -> Option<&'a Node> {
    let share = |n: &Node| {
        let taken = n.mem + placed.get(&n.name).copied().unwrap_or(0);
        taken as f64 / n.maxmem.max(1) as f64
    };
    candidates
        .iter()
        .filter(|n| n.online)
        .min_by(|a, b| share(a).total_cmp(&share(b)).then(a.name.cmp(&b.name)))
}

/// The first disk of a VM's config (`scsi0`, `virtio0`, ...; not a cdrom), with its size
/// in GiB when the config states it (`size=32G`).
pub fn boot_disk(config: &Value) -> Option<(String, Option<u64>)> {
    let config = config.as_object()?;
    let mut disks: Vec<(&String, &str)> = config
        .iter()
        .filter(|(key, _)| {
            ["scsi", "virtio", "sata", "ide"].iter().any(|bus| {
                key.strip_prefix(bus)
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            })
        })
        .filter_map(|(key, value)| Some((key, value.as_str()?)))
        .filter(|(_, value)| !value.contains("media=cdrom"))
        .collect();
    // scsi0 before scsi1, and the buses in PVE's boot preference.
    let rank = |key: &str| {
        let bus = ["scsi", "virtio", "sata", "ide"]
            .iter()
            .position(|b| key.starts_with(b))
            .unwrap_or(4);
        let n: u32 = key
            .trim_start_matches(char::is_alphabetic)
            .parse()
            .unwrap_or(0);
        (bus, n)
    };
    disks.sort_by_key(|(key, _)| rank(key));
    let (key, value) = disks.first()?;
    let size = value
        .split(',')
        .find_map(|part| part.strip_prefix("size="))
        .and_then(gib);
    Some((key.to_string(), size))
}

/// `32G`, `2048M`, `1T` as whole GiB (rounded up).
fn gib(size: &str) -> Option<u64> {
    let (digits, unit) =
        size.split_at(size.find(|c: char| c.is_alphabetic()).unwrap_or(size.len()));
    let value: f64 = digits.parse().ok()?;
    let bytes = value
        * match unit {
            "" | "G" => 1024f64.powi(3),
            "K" => 1024.0,
            "M" => 1024f64.powi(2),
            "T" => 1024f64.powi(4),
            _ => return None,
        };
    Some((bytes / 1024f64.powi(3)).ceil() as u64)
}

/// The first IPv4 address other than loopback the guest agent reports
/// (`agent/network-get-interfaces`).
pub fn agent_address(answer: &Value) -> Option<String> {
    answer["result"]
        .as_array()?
        .iter()
        .flat_map(|interface| interface["ip-addresses"].as_array().into_iter().flatten())
        .filter(|a| a["ip-address-type"] == "ipv4")
        .filter_map(|a| a["ip-address"].as_str())
        .find(|ip| !ip.starts_with("127."))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `/cluster/resources?type=vm` as PVE 8.2 answers it: numbers as numbers, a template
    /// flag on every guest, a container among the VMs.
    #[test]
    fn pve8_resources_read_as_guests() {
        let answer = json!([
            {"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "pve-a", "name": "web-1",
             "status": "running", "template": 0, "maxmem": 2147483648u64, "mem": 1073741824u64,
             "maxcpu": 2, "cpu": 0.013, "uptime": 5120, "netin": 12, "netout": 34,
             "diskread": 0, "diskwrite": 0, "disk": 0, "maxdisk": 34359738368u64,
             "tags": "stage-dev;team-web"},
            {"id": "qemu/9000", "type": "qemu", "vmid": 9000, "node": "pve-b",
             "name": "debian-12", "status": "stopped", "template": 1, "maxmem": 1073741824u64},
            {"id": "lxc/200", "type": "lxc", "vmid": 200, "node": "pve-a", "name": "ct",
             "status": "running", "template": 0},
            {"id": "qemu/101", "type": "qemu", "vmid": 101, "node": "pve-a", "name": "db-1",
             "status": "running", "template": 0, "lock": "backup", "hastate": "started"}
        ]);
        let guests = guests(answer.as_array().unwrap());
        assert_eq!(guests.len(), 3);
        assert_eq!(guests[0].vmid, 100);
        assert_eq!(guests[0].tags["stage"], "dev");
        assert_eq!(guests[0].maxmem, 2 << 30);
        assert!(guests[1].template && guests[1].is_named("debian-12"));
        assert!(guests[1].is_named("9000"));
        assert_eq!(guests[2].lock.as_deref(), Some("backup"));
    }

    /// PVE 9 (and 7 before it) sends `vmid` and `template` as strings in places, and
    /// `/cluster/nextid` answers `"105"`; a template may be flagged `true` by tools.
    #[test]
    fn numbers_sent_as_strings_read_the_same() {
        let guest = Guest::from_resource(&json!(
            {"type": "qemu", "vmid": "104", "node": "pve1", "status": "stopped",
             "template": "1", "maxmem": "536870912", "tags": ""}
        ))
        .unwrap();
        assert_eq!(
            (guest.vmid, guest.template, guest.maxmem),
            (104, true, 512 << 20)
        );
        assert!(guest.tags.is_empty() && guest.name.is_none());
        assert_eq!(number(&json!("105")), Some(105));
        assert_eq!(number(&json!(105)), Some(105));
        assert!(flag(&json!(true)) && !flag(&json!(0)) && !flag(&Value::Null));
        assert_eq!(
            Guest::from_resource(&json!({"type": "qemu", "node": "x"})),
            None
        );
    }

    /// A config after `PUT config` on PVE 8: `cores` and `memory` as strings, the boot
    /// disk on scsi0 with its size, a cloud-init drive and an ISO as cdroms.
    #[test]
    fn a_configs_boot_disk_and_size_are_found() {
        let config = json!({
            "cores": "2", "memory": "2048", "boot": "order=scsi0;ide2;net0",
            "ide2": "local:iso/debian-12.iso,media=cdrom,size=628M",
            "ide0": "local-lvm:vm-100-cloudinit,media=cdrom",
            "scsi1": "local-lvm:vm-100-disk-1,size=100G",
            "scsi0": "local-lvm:vm-100-disk-0,iothread=1,size=32G",
            "net0": "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1",
            "digest": "3b6c5f0c"
        });
        assert_eq!(boot_disk(&config), Some(("scsi0".into(), Some(32))));
        assert_eq!(
            boot_disk(&json!({"virtio0": "ceph:vm-1-disk-0,size=2252M"})),
            Some(("virtio0".into(), Some(3)))
        );
        assert_eq!(boot_disk(&json!({"ide2": "none,media=cdrom"})), None);
        assert_eq!(number(&config["cores"]), Some(2));
    }

    #[test]
    fn the_least_loaded_online_node_is_chosen_counting_this_launch() {
        let listing = json!([
            {"node": "pve1", "status": "online", "mem": "4294967296", "maxmem": 8589934592u64},
            {"node": "pve2", "status": "online", "mem": 2147483648u64, "maxmem": 8589934592u64},
            {"node": "pve3", "status": "offline"}
        ]);
        let nodes = nodes(listing.as_array().unwrap());
        let mut placed = BTreeMap::new();
        assert_eq!(least_loaded(&nodes, &placed).unwrap().name, "pve2");
        placed.insert("pve2".to_string(), 3u64 << 30);
        assert_eq!(least_loaded(&nodes, &placed).unwrap().name, "pve1");
    }

    #[test]
    fn the_agents_first_real_address_is_the_vms() {
        let answer = json!({"result": [
            {"name": "lo", "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4"}]},
            {"name": "eth0", "ip-addresses": [
                {"ip-address": "fe80::1", "ip-address-type": "ipv6"},
                {"ip-address": "10.0.0.7", "ip-address-type": "ipv4", "prefix": 24}]}
        ]});
        assert_eq!(agent_address(&answer).as_deref(), Some("10.0.0.7"));
        assert_eq!(agent_address(&json!({"result": []})), None);
    }
}
