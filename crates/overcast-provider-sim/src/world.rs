//! Everything one simulated cloud holds, in memory behind one lock: per region its
//! instances, launches by client token, images, snapshots, security groups, key pairs,
//! secrets, parameters, container clusters and task definitions; buckets by name; the
//! clock every state is read against; the counter ids come from.

use overcast_provider::{ProviderError, ProviderErrorKind};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

use crate::compute::{InstanceRecord, Launch};
use crate::containers::{ClusterRecord, FamilyRecord};
use crate::firewall::GroupRecord;
use crate::images::{ImageRecord, SnapshotRecord};
use crate::keypairs::KeyPairRecord;
use crate::parameters::ParameterRecord;
use crate::secrets::SecretRecord;
use crate::storage::BucketRecord;

pub(crate) struct World {
    pub clock: Clock,
    pub ids: Ids,
    pub regions: BTreeMap<String, Region>,
    pub buckets: BTreeMap<String, BucketRecord>,
    /// IAM's roles by name: IAM is global.
    pub roles: std::collections::BTreeSet<String>,
}

/// What one region holds. EC2's resources live in one region each.
#[derive(Default)]
pub(crate) struct Region {
    pub instances: BTreeMap<String, InstanceRecord>,
    /// Launches by client token, so a repeated launch answers the first one's instances.
    pub launches: HashMap<String, Launch>,
    pub images: BTreeMap<String, ImageRecord>,
    pub snapshots: BTreeMap<String, SnapshotRecord>,
    pub groups: BTreeMap<String, GroupRecord>,
    /// By name, as EC2 keys them.
    pub key_pairs: BTreeMap<String, KeyPairRecord>,
    /// Secrets Manager's secrets, by name; values only ever here, in memory.
    pub secrets: BTreeMap<String, SecretRecord>,
    /// SSM's parameters, by full name, so a path's parameters sort together.
    pub parameters: BTreeMap<String, ParameterRecord>,
    /// ECS's clusters by name, each with its services and tasks.
    pub clusters: BTreeMap<String, ClusterRecord>,
    /// ECS's task definitions by family.
    pub task_definitions: BTreeMap<String, FamilyRecord>,
    /// CloudWatch Logs' groups by name, with their tags (the sim's containers log nothing).
    pub log_groups: BTreeMap<String, BTreeMap<String, String>>,
    /// Cloud Map's services by id, with the client token each was made under.
    pub registries: BTreeMap<String, (overcast_types::Registry, String)>,
}

impl World {
    pub fn new(regions: &[String]) -> World {
        World {
            clock: Clock {
                started: Instant::now(),
                began: OffsetDateTime::now_utc(),
                skipped: Duration::ZERO,
            },
            ids: Ids { issued: 0 },
            regions: regions
                .iter()
                .map(|r| (r.clone(), Region::default()))
                .collect(),
            buckets: BTreeMap::new(),
            roles: Default::default(),
        }
    }

    pub fn region(&self, name: &str) -> Result<&Region, ProviderError> {
        self.regions.get(name).ok_or_else(|| no_region(name))
    }

    pub fn region_mut(&mut self, name: &str) -> Result<&mut Region, ProviderError> {
        self.regions.get_mut(name).ok_or_else(|| no_region(name))
    }
}

/// Calls are checked against the environment's regions at the gate; this is the answer for
/// one that slipped past it.
fn no_region(name: &str) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::InvalidInput,
        "unknown_region",
        format!("region `{name}` is not simulated here"),
    )
    .with_field("region")
}

/// The simulated cloud's time: the real time since it was made plus whatever tests skipped,
/// so a test can move states on without waiting.
pub(crate) struct Clock {
    started: Instant,
    /// The wall-clock time it started at, which dates the moments it measures.
    began: OffsetDateTime,
    skipped: Duration,
}

impl Clock {
    /// Time since the cloud was made: what transitions are measured in.
    pub fn now(&self) -> Duration {
        self.started.elapsed() + self.skipped
    }

    pub fn skip(&mut self, by: Duration) {
        self.skipped += by;
    }

    /// The wall-clock time, for launch and creation times.
    pub fn wall(&self) -> OffsetDateTime {
        let skipped = time::Duration::try_from(self.skipped).unwrap_or(time::Duration::MAX);
        OffsetDateTime::now_utc().saturating_add(skipped)
    }

    /// The wall-clock time as RFC 3339, as creation dates are shown.
    pub fn timestamp(&self) -> String {
        self.timestamp_after(Duration::ZERO)
    }

    /// The wall-clock time `after` from now as RFC 3339, as due dates are shown.
    pub fn timestamp_after(&self, after: Duration) -> String {
        let after = time::Duration::try_from(after).unwrap_or(time::Duration::MAX);
        rfc3339(self.wall().saturating_add(after))
    }

    /// The wall-clock time of a moment of this clock (see [`Clock::now`]) as RFC 3339: the
    /// same text whenever it is asked for, as the dates of what happened between two calls
    /// are worked out later.
    pub fn timestamp_at(&self, at: Duration) -> String {
        let at = time::Duration::try_from(at).unwrap_or(time::Duration::MAX);
        rfc3339(self.began.saturating_add(at))
    }
}

fn rfc3339(moment: OffsetDateTime) -> String {
    moment
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Ids in EC2's shape (`i-` and 17 hex digits), from one counter, so ids never repeat in a
/// cloud and sort in the order things were made.
pub(crate) struct Ids {
    issued: u64,
}

impl Ids {
    pub fn next(&mut self, prefix: &str) -> String {
        format!("{prefix}-{:017x}", self.number())
    }

    /// An id in a UUID's shape (Secrets Manager's version ids), from the same counter.
    pub fn uuid(&mut self) -> String {
        format!("00000000-0000-4000-8000-{:012x}", self.number())
    }

    /// The next number of the counter.
    pub fn number(&mut self) -> u64 {
        self.issued += 1;
        self.issued
    }

    /// How many ids were issued so far: a number for addresses.
    pub fn issued(&self) -> u64 {
        self.issued
    }
}
