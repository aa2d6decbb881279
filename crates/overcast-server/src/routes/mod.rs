//! The native `/v1` routes and the always-there system routes. Handlers parse, call the
//! core, and shape the answer; they decide nothing themselves.

pub mod audit;
pub mod buckets;
pub mod bulk;
pub mod environments;
pub mod images;
pub mod instances;
pub mod key_pairs;
pub mod objects;
pub mod operations;
pub mod security_groups;
pub mod system;
pub mod tags;
pub mod tokens;

use overcast_types::Error;
use time::OffsetDateTime;

use crate::extract::parse_param;

/// Listings return this many items unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 50;

/// `limit`: 1 to the store's maximum, default 50.
fn page_limit(value: Option<&str>) -> Result<u32, Error> {
    let max = overcast_core::MAX_PAGE;
    match parse_param::<u32>("limit", value, &format!("a number from 1 to {max}"))? {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid(
            "limit",
            format!("{n} is not from 1 to {max}"),
        )),
    }
}

/// `since`: an RFC 3339 time.
fn since(value: Option<&str>) -> Result<Option<OffsetDateTime>, Error> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).map_err(|_| {
                Error::invalid(
                    "since",
                    format!("`{v}` is not an RFC 3339 time like 2026-01-31T12:00:00Z"),
                )
            })
        })
        .transpose()
}
