//! One kind's shelf of the inventory: its resources by key, when each part of the backend
//! (a region) was last read whole, and which of them overcast wrote itself lately; and how
//! a backend read is taken in, with the drift it shows.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::RwLock;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

use overcast_types::EventKind;

use super::kinds::Held;

/// How long overcast's own write of a resource outranks a listing that began before it.
const OWN_WRITE_KEPT: Duration = Duration::from_secs(600);

/// How long a resource overcast removed stays listed in its last state when the backend
/// no longer lists it: an hour, as EC2 lists terminated instances (clients wait for
/// `terminated` rather than for an instance to vanish).
const TOMBSTONE_KEPT: Duration = Duration::from_secs(3600);

/// What a backend read covered: a whole part, or some resources by key.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Part(&'a str),
    Keys(&'a [String]),
}

/// A change a read saw that overcast did not make.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub kind: EventKind,
    pub key: String,
    pub org: Option<String>,
    pub detail: Value,
}

/// The resources of one kind as last read or written.
pub struct Shelf<T> {
    state: RwLock<State<T>>,
}

struct State<T> {
    items: BTreeMap<String, T>,
    /// When each part was last read whole.
    read_at: BTreeMap<String, OffsetDateTime>,
    /// When overcast last wrote each resource itself.
    written: HashMap<String, Instant>,
    /// Resources overcast removed that stay listed, gone, though the backend lists them no
    /// more, and since when.
    tombstones: HashMap<String, Instant>,
}

impl<T> Default for Shelf<T> {
    fn default() -> Self {
        Shelf {
            state: RwLock::new(State {
                items: BTreeMap::new(),
                read_at: BTreeMap::new(),
                written: HashMap::new(),
                tombstones: HashMap::new(),
            }),
        }
    }
}

impl<T: Held> Shelf<T> {
    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State<T>> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State<T>> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether every one of `parts` has been read whole.
    pub fn knows(&self, parts: &[String]) -> bool {
        let state = self.read_state();
        parts.iter().all(|p| state.read_at.contains_key(p))
    }

    /// When the oldest read of `parts` was; none while one has not been read.
    pub fn as_of(&self, parts: &[String]) -> Option<OffsetDateTime> {
        let state = self.read_state();
        parts
            .iter()
            .map(|p| state.read_at.get(p).copied())
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()
    }

    /// The resources of `parts` that `keep` keeps, sorted by key, and when the oldest part
    /// was read; none while a part has not been read.
    pub fn select(
        &self,
        parts: &[String],
        keep: impl Fn(&T) -> bool,
    ) -> Option<(Vec<T>, OffsetDateTime)> {
        let (items, _, as_of) = self.page(parts, keep, None, u32::MAX)?;
        Some((items, as_of))
    }

    /// One page of [`Shelf::select`]: at most `limit` resources after the key `after`, the
    /// last one's key when more follow, and the time of the oldest read. Only the page is
    /// copied, whatever the shelf holds.
    pub fn page(
        &self,
        parts: &[String],
        keep: impl Fn(&T) -> bool,
        after: Option<&str>,
        limit: u32,
    ) -> Option<(Vec<T>, Option<String>, OffsetDateTime)> {
        use std::ops::Bound;
        let as_of = self.as_of(parts)?;
        let state = self.read_state();
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_string()));
        let mut matching = state
            .items
            .range::<String, _>((start, Bound::Unbounded))
            .filter(|(_, item)| parts.iter().any(|p| p == item.part()) && keep(item));
        let items: Vec<(&String, &T)> = matching.by_ref().take(limit.max(1) as usize).collect();
        let next = match (matching.next(), items.last()) {
            (Some(_), Some((last, _))) => Some(last.to_string()),
            _ => None,
        };
        Some((
            items.into_iter().map(|(_, i)| i.clone()).collect(),
            next,
            as_of,
        ))
    }

    /// How many resources of `parts` that `keep` keeps fall under each `key`, and when
    /// the oldest part was read; none while a part has not been read. Nothing is copied.
    pub fn count_by<K: Ord>(
        &self,
        parts: &[String],
        keep: impl Fn(&T) -> bool,
        key: impl Fn(&T) -> K,
    ) -> Option<(BTreeMap<K, usize>, OffsetDateTime)> {
        let as_of = self.as_of(parts)?;
        let state = self.read_state();
        let mut counts = BTreeMap::new();
        for item in state
            .items
            .values()
            .filter(|item| parts.iter().any(|p| p == item.part()) && keep(item))
        {
            *counts.entry(key(item)).or_default() += 1;
        }
        Some((counts, as_of))
    }

    /// One resource, if the shelf holds it.
    pub fn get(&self, key: &str) -> Option<T> {
        self.read_state().items.get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.read_state().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// overcast's own write: these resources are as given now.
    pub fn record(&self, items: impl IntoIterator<Item = T>) {
        let mut state = self.write_state();
        let now = Instant::now();
        for item in items {
            let key = item.key();
            state.written.insert(key.clone(), now);
            state.items.insert(key, item);
        }
    }

    /// overcast's own write: these resources are gone.
    pub fn record_gone(&self, keys: &[String]) {
        let mut state = self.write_state();
        let now = Instant::now();
        for key in keys {
            state.written.insert(key.clone(), now);
            state.items.remove(key);
        }
    }

    /// overcast's own write: these resources are gone, and are kept as given (in a gone
    /// state) for an hour after, whatever the backend lists.
    pub fn record_tombstones(&self, items: impl IntoIterator<Item = T>) {
        let mut state = self.write_state();
        let now = Instant::now();
        for item in items {
            let key = item.key();
            state.written.insert(key.clone(), now);
            state.tombstones.insert(key.clone(), now);
            state.items.insert(key, item);
        }
    }

    /// overcast's own write: the resources `gone` picks are gone.
    pub fn record_gone_where(&self, gone: impl Fn(&T) -> bool) {
        let keys: Vec<String> = self
            .read_state()
            .items
            .iter()
            .filter(|(_, item)| gone(item))
            .map(|(key, _)| key.clone())
            .collect();
        self.record_gone(&keys);
    }

    /// overcast's own write: changes each of these resources the shelf holds.
    pub fn update(&self, keys: &[String], change: impl Fn(&mut T)) {
        let mut state = self.write_state();
        let now = Instant::now();
        for key in keys {
            if let Some(item) = state.items.get_mut(key) {
                change(item);
                state.written.insert(key.clone(), now);
            }
        }
    }

    /// Takes in what a backend read found (`listed`, for `scope`, the read having begun at
    /// `began`, wall time `at`) and answers the drift it shows. A resource overcast wrote
    /// after the read began keeps overcast's version; one in `changing` (an operation is
    /// changing it), or of a part never read before, is taken without drift.
    pub fn absorb(
        &self,
        scope: Scope<'_>,
        listed: Vec<T>,
        began: Instant,
        at: OffsetDateTime,
        changing: &HashMap<String, usize>,
    ) -> Vec<Drift> {
        let mut state = self.write_state();
        let own_newer =
            |state: &State<T>, key: &str| state.written.get(key).is_some_and(|w| *w > began);
        let kept = |state: &State<T>, key: &str| {
            state
                .tombstones
                .get(key)
                .is_some_and(|at| at.elapsed() < TOMBSTONE_KEPT)
        };
        let mut drift = Vec::new();
        let mut seen = BTreeSet::new();
        for item in listed {
            let key = item.key();
            seen.insert(key.clone());
            if own_newer(&state, &key) {
                continue;
            }
            let quiet = changing.contains_key(&key) || !state.read_at.contains_key(item.part());
            let before = state.items.insert(key.clone(), item.clone());
            // One on its way out that was never seen is no news.
            let quiet = quiet || (before.is_none() && item.is_gone());
            if quiet {
                continue;
            }
            let change = match before {
                None => Some((EventKind::Created, item.describe())),
                Some(before) => difference(&before.watched(), &item.watched())
                    .map(|detail| (EventKind::Changed, detail)),
            };
            if let Some((kind, detail)) = change {
                drift.push(Drift {
                    kind,
                    org: item.org().map(str::to_string),
                    key,
                    detail,
                });
            }
        }
        // What a read that covered it did not find has gone.
        let in_scope = |key: &String, item: &T| match scope {
            Scope::Part(part) => item.part() == part,
            Scope::Keys(keys) => keys.contains(key),
        };
        let gone: Vec<String> = state
            .items
            .iter()
            .filter(|(key, item)| {
                in_scope(key, item)
                    && !seen.contains(*key)
                    && !own_newer(&state, key)
                    && !kept(&state, key)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in gone {
            if let Some(before) = state.items.remove(&key) {
                let quiet = changing.contains_key(&key)
                    || before.is_gone()
                    || !state.read_at.contains_key(before.part());
                if !quiet {
                    drift.push(Drift {
                        kind: EventKind::Deleted,
                        org: before.org().map(str::to_string),
                        detail: before.describe(),
                        key,
                    });
                }
            }
        }
        if let Scope::Part(part) = scope {
            state.read_at.insert(part.to_string(), at);
        }
        state.written.retain(|_, w| w.elapsed() < OWN_WRITE_KEPT);
        let expired: Vec<String> = state
            .tombstones
            .iter()
            .filter(|(_, at)| at.elapsed() >= TOMBSTONE_KEPT)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            state.tombstones.remove(&key);
            if !seen.contains(&key) {
                state.items.remove(&key);
            }
        }
        drift
    }
}

/// What differs between two reads' watched fields, each as `{"before", "after"}` (tags key
/// by key); none when nothing does.
fn difference(before: &Value, after: &Value) -> Option<Value> {
    let (Value::Object(before), Value::Object(after)) = (before, after) else {
        return (before != after).then(|| json!({"before": before, "after": after}));
    };
    let mut detail = serde_json::Map::new();
    let fields: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for field in fields {
        let (b, a) = (
            before.get(field).unwrap_or(&Value::Null),
            after.get(field).unwrap_or(&Value::Null),
        );
        if b == a {
            continue;
        }
        let change = match (field.as_str(), b, a) {
            ("tags", Value::Object(_) | Value::Null, Value::Object(_) | Value::Null) => {
                difference_by_key(b, a)
            }
            _ => json!({"before": b, "after": a}),
        };
        detail.insert(field.clone(), change);
    }
    (!detail.is_empty()).then_some(Value::Object(detail))
}

/// Tags that differ, each with its value before and after.
fn difference_by_key(before: &Value, after: &Value) -> Value {
    let empty = serde_json::Map::new();
    let (before, after) = (
        before.as_object().unwrap_or(&empty),
        after.as_object().unwrap_or(&empty),
    );
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let changed: serde_json::Map<String, Value> = keys
        .into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| {
            (
                k.clone(),
                json!({"before": before.get(k), "after": after.get(k)}),
            )
        })
        .collect();
    Value::Object(changed)
}
