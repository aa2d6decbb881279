//! Ids and times as the store keeps them: time-ordered ULIDs with a prefix naming what
//! they are, and timestamps at the store's precision.

use std::sync::Mutex;
use time::OffsetDateTime;

/// Now, at the store's precision (milliseconds), so a value reads back as it was written.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t)
}

/// A time-ordered, unique id with a prefix naming what it is: `op_01J...`.
pub fn new_id(prefix: &str) -> String {
    static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);
    let mut generator = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    let generator = generator.get_or_insert_with(ulid::Generator::new);
    // Monotonic within a millisecond; on the (2^80 per ms) overflow fall back to a fresh one.
    let id = generator.generate().unwrap_or_else(|_| ulid::Ulid::new());
    format!("{prefix}_{}", id.to_string().to_lowercase())
}
