//! Several servers on one database: which server holds which operation (leases claimed
//! with `FOR UPDATE SKIP LOCKED` on PostgreSQL, renewed by heartbeat, fenced by a token
//! each claim raises), the servers themselves with their heartbeats, and the wake-ups
//! PostgreSQL's `LISTEN/NOTIFY` carries between them (an operation ended, a cancel).

use overcast_types::Operation;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};
use time::OffsetDateTime;

use crate::{from_ms, operation_from_row, to_ms, Backend, Store, StoreError};

/// The channel servers notify each other on: `ended:<id>` and `cancel:<id>`.
pub const NOTIFY_CHANNEL: &str = "overcast_operations";

/// A server's hold on an operation: the server, and the fencing token of this claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub owner: String,
    pub fence: i64,
}

/// An operation a server has just claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub operation: Operation,
    pub hold: Hold,
    /// The server that held it before, when its lease had run out (a takeover).
    pub previous_owner: Option<String>,
}

/// What a save learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub cancel_requested: bool,
}

/// A server as it registered itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRecord {
    pub id: String,
    pub version: String,
    pub host: String,
    pub pid: u32,
    pub started_at: OffsetDateTime,
    pub heartbeat_at: OffsetDateTime,
}

/// An operation's lease as renewed: its id, its fence, and whether a cancel was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    pub id: String,
    pub fence: i64,
    pub cancel_requested: bool,
}

/// `sql` (an UPDATE ending in its WHERE clause) limited to the holder's claim when there
/// is a `hold`: its two values bind as `$first` and `$first + 1`.
pub(crate) fn fenced(sql: &str, hold: Option<&Hold>, first: usize) -> String {
    match hold {
        None => sql.to_string(),
        Some(_) => format!("{sql} AND owner = ${first} AND fence = ${}", first + 1),
    }
}

/// Binds a hold's values for [`fenced`].
pub(crate) fn with_hold<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    hold: Option<&'q Hold>,
) -> Query<'q, Any, AnyArguments<'q>> {
    match hold {
        None => query,
        Some(hold) => query.bind(hold.owner.as_str()).bind(hold.fence),
    }
}

const OPERATION_COLUMNS: &str = "operations.id, kind, org, environment, target, requested_by,
    status, progress_done, progress_total, results, error, input, cancel_requested, created_at,
    started_at, finished_at, backend_calls";

impl Store {
    /// Records a new operation held by `owner` until `lease_until` from the moment it
    /// exists (so no claim can take it first), or answers what its idempotency key already
    /// led to (see [`Store::create_operation`]).
    pub async fn create_held_operation(
        &self,
        operation: &Operation,
        claim: Option<&crate::IdempotencyClaim>,
        owner: &str,
        lease_until: OffsetDateTime,
    ) -> Result<crate::Created, StoreError> {
        self.insert_operation(operation, claim, Some((owner, lease_until)))
            .await
    }

    /// Claims up to `limit` unfinished operations nobody holds, or whose holder's lease ran
    /// out before `now`, for `owner` until `lease_until`; with `every`, every unfinished
    /// one (a lone server on SQLite taking over from its own previous run). Two servers
    /// never claim the same operation: PostgreSQL skips the rows another claim has locked,
    /// and SQLite has one writer at a time. Operations of `excluded` environments are left.
    pub async fn claim_operations(
        &self,
        owner: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
        every: bool,
        excluded: &[String],
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // $1 owner, $2 lease_until, $3 limit, then the lease check's now and the excluded
        // environments, numbered as they come.
        let mut conditions = String::from("status IN ('pending', 'running')");
        let mut next = 4;
        if !every {
            conditions.push_str(&format!(" AND (owner IS NULL OR lease_until < ${next})"));
            next += 1;
        }
        if !excluded.is_empty() {
            let places: Vec<String> = (next..next + excluded.len())
                .map(|i| format!("${i}"))
                .collect();
            conditions.push_str(&format!(
                " AND (environment IS NULL OR environment NOT IN ({}))",
                places.join(", ")
            ));
        }
        let now = (!every).then(|| to_ms(now));
        let bind_all = |sql| claim_query(sql, owner, to_ms(lease_until), limit, now, excluded);
        let rows = match self.backend {
            // One statement: the picked rows are locked, and rows another server's claim
            // has locked are skipped, not waited for.
            Backend::Postgres => {
                let sql = format!(
                    "WITH picked AS (
                         SELECT id AS picked_id, owner AS previous_owner FROM operations
                         WHERE {conditions} ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
                     UPDATE operations SET owner = $1, lease_until = $2, fence = fence + 1
                     FROM picked WHERE operations.id = picked.picked_id
                     RETURNING {OPERATION_COLUMNS}, fence, previous_owner"
                );
                bind_all(&sql).fetch_all(&self.pool).await?
            }
            // SQLite writes one statement at a time, so the claim needs no lock; its
            // RETURNING cannot name the picked rows, so the holders before come from a
            // read just before (they only count takeovers).
            Backend::Sqlite => {
                let sql = format!(
                    "UPDATE operations SET owner = $1, lease_until = $2, fence = fence + 1
                     WHERE id IN (SELECT id FROM operations WHERE {conditions}
                                  ORDER BY id LIMIT $3)
                     RETURNING {OPERATION_COLUMNS}, fence, NULL AS previous_owner"
                );
                let previous = sqlx::query(&format!(
                    "SELECT id, owner FROM operations WHERE owner IS NOT NULL AND {}",
                    "status IN ('pending', 'running')"
                ))
                .fetch_all(&self.pool)
                .await?;
                let previous: std::collections::HashMap<String, String> = previous
                    .iter()
                    .map(|row| Ok((row.try_get("id")?, row.try_get("owner")?)))
                    .collect::<Result<_, StoreError>>()?;
                let rows = bind_all(&sql).fetch_all(&self.pool).await?;
                return rows
                    .iter()
                    .map(|row| {
                        let operation = operation_from_row(row)?;
                        let previous_owner = previous
                            .get(&operation.id)
                            .filter(|p| p.as_str() != owner)
                            .cloned();
                        Ok(Claimed {
                            hold: Hold {
                                owner: owner.to_string(),
                                fence: row.try_get("fence")?,
                            },
                            operation,
                            previous_owner,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
                    .map(sorted);
            }
        };
        rows.iter()
            .map(|row| {
                Ok(Claimed {
                    operation: operation_from_row(row)?,
                    hold: Hold {
                        owner: owner.to_string(),
                        fence: row.try_get("fence")?,
                    },
                    previous_owner: row
                        .try_get::<Option<String>, _>("previous_owner")?
                        .filter(|previous| previous != owner),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(sorted)
    }

    /// Renews `owner`'s leases on the operations `ids` (the ones it runs) until
    /// `lease_until`; answers those it still holds (one it does not hear of again was
    /// claimed by another server, or has ended). A hold on an operation it no longer runs
    /// is left to run out, for any server to claim.
    pub async fn renew_leases(
        &self,
        owner: &str,
        ids: &[String],
        lease_until: OffsetDateTime,
    ) -> Result<Vec<Renewed>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let places: Vec<String> = (3..3 + ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "UPDATE operations SET lease_until = $2
             WHERE owner = $1 AND status IN ('pending', 'running') AND id IN ({})
             RETURNING id, fence, cancel_requested",
            places.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(owner).bind(to_ms(lease_until));
        for id in ids {
            query = query.bind(id.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(Renewed {
                    id: row.try_get("id")?,
                    fence: row.try_get("fence")?,
                    cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
                })
            })
            .collect()
    }

    /// Lets go of every operation `owner` holds, for another server to claim at once (a
    /// server stopping).
    pub async fn release_operations(&self, owner: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE operations SET owner = NULL, lease_until = NULL
             WHERE owner = $1 AND status IN ('pending', 'running')",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// The unfinished operations each server holds, as (server, operation id), by id.
    pub async fn held_operations(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT owner, id FROM operations
             WHERE owner IS NOT NULL AND status IN ('pending', 'running') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("owner")?, row.try_get("id")?)))
            .collect()
    }

    /// Records a server, or refreshes its record.
    pub async fn register_server(&self, server: &ServerRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO servers (id, version, host, pid, started_at, heartbeat_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = $6",
        )
        .bind(server.id.as_str())
        .bind(server.version.as_str())
        .bind(server.host.as_str())
        .bind(i64::from(server.pid))
        .bind(to_ms(server.started_at))
        .bind(to_ms(server.heartbeat_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A server's heartbeat.
    pub async fn heartbeat(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE servers SET heartbeat_at = $2 WHERE id = $1")
            .bind(id)
            .bind(to_ms(at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The servers whose last heartbeat is no older than `since`; older records are
    /// forgotten on the way.
    pub async fn servers(&self, since: OffsetDateTime) -> Result<Vec<ServerRecord>, StoreError> {
        sqlx::query("DELETE FROM servers WHERE heartbeat_at < $1")
            .bind(to_ms(since))
            .execute(&self.pool)
            .await?;
        let rows = sqlx::query(
            "SELECT id, version, host, pid, started_at, heartbeat_at FROM servers ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(server_from_row).collect()
    }

    /// Forgets a server that stopped.
    pub async fn remove_server(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Tells the other servers on PostgreSQL `event` (on SQLite there are none).
    pub(crate) async fn notify(&self, event: &str) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(event)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// A listener for the other servers' events, on PostgreSQL.
    pub async fn listen(&self) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        Ok(Some(listener))
    }
}

/// The claim statement with its values, in the order of [`Store::claim_operations`].
fn claim_query<'q>(
    sql: &'q str,
    owner: &str,
    lease_until: i64,
    limit: usize,
    now: Option<i64>,
    excluded: &[String],
) -> Query<'q, Any, AnyArguments<'q>> {
    let mut query = sqlx::query(sql)
        .bind(owner.to_string())
        .bind(lease_until)
        .bind(limit as i64);
    if let Some(now) = now {
        query = query.bind(now);
    }
    for environment in excluded {
        query = query.bind(environment.clone());
    }
    query
}

fn sorted(mut claimed: Vec<Claimed>) -> Vec<Claimed> {
    claimed.sort_by(|a, b| a.operation.id.cmp(&b.operation.id));
    claimed
}

fn server_from_row(row: &AnyRow) -> Result<ServerRecord, StoreError> {
    Ok(ServerRecord {
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        host: row.try_get("host")?,
        pid: u32::try_from(row.try_get::<i64, _>("pid")?).unwrap_or(0),
        started_at: from_ms(row.try_get("started_at")?)?,
        heartbeat_at: from_ms(row.try_get("heartbeat_at")?)?,
    })
}
