//! Persistence of overcast: operations, idempotency keys, the audit log and tokens. SQLite
//! (WAL) by default, PostgreSQL when the URL says `postgres://`; one portable schema and one
//! code path through sqlx's `Any` driver. This is the only crate that writes SQL.

use overcast_types::{
    AccessKey, AuditEntry, Event, EventKind, Operation, OperationError, OperationStatus, Progress,
    Role, TargetResult, TokenInfo,
};
use sqlx::any::{install_default_drivers, AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Row};
use std::time::Duration;
use time::OffsetDateTime;

mod coordination;

use coordination::{fenced, with_hold};
pub use coordination::{Claimed, Hold, Renewed, Saved, ServerRecord, NOTIFY_CHANNEL};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Listings never return more than this many rows at once.
pub const MAX_PAGE: u32 = 500;

/// The store's error: a database fault, or a row that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored {what} cannot be read: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("operation {id} is held by another server now: this server's write was refused")]
    Fenced { id: String },
    #[error("cannot create the database file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What asking to revoke a token led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// The token is revoked (now, or since earlier).
    Revoked,
    NotFound,
    /// The token is the last admin token that can still be used, and stays so.
    LastAdmin,
}

/// What creating an operation under an idempotency key led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new operation was recorded.
    New(Operation),
    /// The key was used before with the same request: here is that operation.
    Replayed(Operation),
    /// The key was used before with a different request.
    KeyReused { operation_id: String },
}

/// An idempotency key as the caller presented it, with a hash of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    /// Keys are unique within a scope (the org).
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

/// Which operations to list. Every given part must match.
#[derive(Debug, Clone, Default)]
pub struct OperationFilter {
    pub org: Option<String>,
    pub status: Option<OperationStatus>,
    pub kind: Option<String>,
    pub since: Option<OffsetDateTime>,
}

/// Which audit entries to list. Every given part must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub org: Option<String>,
    pub token_id: Option<String>,
    pub operation_id: Option<String>,
    pub since: Option<OffsetDateTime>,
}

/// Which events to list. Every given part must match.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub org: Option<String>,
    pub environment: Option<String>,
    pub kind: Option<EventKind>,
    pub resource_kind: Option<String>,
    pub resource: Option<String>,
}

/// A page request: at most `limit` rows older than the row whose id is `after`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<String>,
}

/// A value bound to a numbered placeholder of a query built at run time.
enum Arg {
    Text(String),
    Int(i64),
}

/// A WHERE clause built from optional parts, numbering placeholders as it goes.
#[derive(Default)]
struct Conditions {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Conditions {
    fn push(&mut self, clause_with_placeholder: &str, arg: Arg) {
        self.args.push(arg);
        let placeholder = format!("${}", self.args.len());
        self.clauses
            .push(clause_with_placeholder.replace('?', &placeholder));
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn bind<'q>(
        &'q self,
        mut query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        for arg in &self.args {
            query = match arg {
                Arg::Text(s) => query.bind(s.as_str()),
                Arg::Int(i) => query.bind(*i),
            };
        }
        query
    }
}

/// The database behind overcast. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Where it connected, for the PostgreSQL listener of [`Store::listen`].
    url: std::sync::Arc<str>,
}

impl Store {
    /// Connects to `url` (`sqlite://PATH` creates the file; `postgres://...`) and applies
    /// the embedded migrations.
    /// Opens the database at `url`, creating a SQLite file readable by its owner only (its
    /// WAL and shared-memory files take the same mode), and migrates it.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        if backend == Backend::Sqlite {
            create_private_file(url)?;
        }
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let listen_url: std::sync::Arc<str> = url.as_str().into();
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers go on while one writer writes; the busy timeout
                        // makes a second writer wait instead of failing at once.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            backend,
            url: listen_url,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Answers when the database does; used by `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the connections, waiting for the ones in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- tokens -------------------------------------------------------------------------

    /// Records a token by the hash of its secret. Recording the same id or secret again is a
    /// no-op, so a resumed `token.create` operation does no harm, and two servers that
    /// bootstrap one store with the same admin secret record it once.
    pub async fn insert_token(
        &self,
        token: &TokenInfo,
        secret_hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tokens (id, name, org, role, secret_hash, created_at, expires_at, revoked_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(token.id.as_str())
        .bind(token.name.as_str())
        .bind(token.org.as_str())
        .bind(token.role.as_str())
        .bind(secret_hash)
        .bind(to_ms(token.created_at))
        .bind(token.expires_at.map(to_ms))
        .bind(token.revoked_at.map(to_ms))
        .bind(token.created_by.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenInfo>, StoreError> {
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE secret_hash = $1"))
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenInfo>, StoreError> {
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Tokens, newest first; of one org when `org` is given.
    pub async fn tokens(&self, org: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        let mut conditions = Conditions::default();
        if let Some(org) = org {
            conditions.push("org = ?", Arg::Text(org.into()));
        }
        let sql = format!("{TOKEN_SELECT} {} ORDER BY id DESC", conditions.sql());
        let rows = conditions
            .bind(sqlx::query(&sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    // ---- access keys --------------------------------------------------------------------

    pub async fn insert_access_key(&self, key: &AccessKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_keys (id, token_id, environment, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(key.id.as_str())
        .bind(key.token_id.as_str())
        .bind(key.environment.as_str())
        .bind(to_ms(key.created_at))
        .bind(key.revoked_at.map(to_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKey>, StoreError> {
        let row = sqlx::query(&format!("{ACCESS_KEY_SELECT} WHERE k.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(access_key_from_row).transpose()
    }

    /// Access keys, newest first; of one org when `org` is given.
    pub async fn access_keys(&self, org: Option<&str>) -> Result<Vec<AccessKey>, StoreError> {
        let mut conditions = Conditions::default();
        if let Some(org) = org {
            conditions.push("t.org = ?", Arg::Text(org.into()));
        }
        let sql = format!(
            "{ACCESS_KEY_SELECT} {} ORDER BY k.created_at DESC, k.id",
            conditions.sql()
        );
        let rows = conditions
            .bind(sqlx::query(&sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(access_key_from_row).collect()
    }

    /// Revokes an access key (a second revoke keeps the first time); whether it exists.
    pub async fn revoke_access_key(
        &self,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE access_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
        )
        .bind(id)
        .bind(to_ms(at))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed > 0)
    }

    // ---- console sessions ---------------------------------------------------------------

    /// Records a console session by its secret's hash, and forgets every session that has
    /// expired.
    pub async fn insert_session(
        &self,
        secret_hash: &str,
        token_id: &str,
        created_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(to_ms(created_at))
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (secret_hash, token_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(secret_hash)
        .bind(token_id)
        .bind(to_ms(created_at))
        .bind(to_ms(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token of the console session with this secret hash, and when the session
    /// expires.
    pub async fn session_token(
        &self,
        secret_hash: &str,
    ) -> Result<Option<(TokenInfo, OffsetDateTime)>, StoreError> {
        let row = sqlx::query(
            "SELECT t.id, t.name, t.org, t.role, t.created_at, t.expires_at, t.revoked_at,
                    t.created_by, s.expires_at AS session_expires_at
             FROM console_sessions s JOIN tokens t ON t.id = s.token_id
             WHERE s.secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let expires_at = from_ms(row.try_get("session_expires_at")?)?;
        Ok(Some((token_from_row(&row)?, expires_at)))
    }

    /// Ends a console session; whether there was one.
    pub async fn delete_session(&self, secret_hash: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM console_sessions WHERE secret_hash = $1")
            .bind(secret_hash)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    pub async fn token_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tokens")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(n as u64)
    }

    /// Marks a token revoked at `at`, unless it is the last admin token usable at `at`:
    /// nobody could manage tokens after that. Revoking a revoked token keeps the first
    /// time. Safe against concurrent revokes of the last two admins, on either database.
    pub async fn revoke_token(&self, id: &str, at: OffsetDateTime) -> Result<Revoked, StoreError> {
        let at = to_ms(at);
        let mut tx = self.pool.begin().await?;
        // Lock every usable admin token first (a row lock each on PostgreSQL, the write
        // lock on SQLite), so that of two concurrent revokes the second sees the first's.
        sqlx::query("UPDATE tokens SET role = role WHERE role = 'admin' AND revoked_at IS NULL")
            .execute(&mut *tx)
            .await?;
        let revoked = sqlx::query(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1
             AND (role <> 'admin' OR revoked_at IS NOT NULL
                  OR (expires_at IS NOT NULL AND expires_at <= $2)
                  OR EXISTS (SELECT 1 FROM tokens other WHERE other.id <> $1
                             AND other.role = 'admin' AND other.revoked_at IS NULL
                             AND (other.expires_at IS NULL OR other.expires_at > $2)))",
        )
        .bind(id)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let exists = revoked > 0
            || sqlx::query("SELECT id FROM tokens WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        tx.commit().await?;
        Ok(match (revoked > 0, exists) {
            (true, _) => Revoked::Revoked,
            (false, true) => Revoked::LastAdmin,
            (false, false) => Revoked::NotFound,
        })
    }

    // ---- operations ---------------------------------------------------------------------

    /// Records a new operation, or, under an idempotency key already used, returns what that
    /// key led to. Safe against concurrent identical requests: the key row is written first,
    /// in the same transaction as the operation, so exactly one request wins.
    pub async fn create_operation(
        &self,
        operation: &Operation,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Created, StoreError> {
        self.insert_operation(operation, claim, None).await
    }

    /// [`Store::create_operation`], the operation held by `holder` (a server, until a time)
    /// from the moment it exists, when given.
    pub(crate) async fn insert_operation(
        &self,
        operation: &Operation,
        claim: Option<&IdempotencyClaim>,
        holder: Option<(&str, OffsetDateTime)>,
    ) -> Result<Created, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(claim) = claim {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (scope, key, request_hash, operation_id, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO NOTHING",
            )
            .bind(claim.scope.as_str())
            .bind(claim.key.as_str())
            .bind(claim.request_hash.as_str())
            .bind(operation.id.as_str())
            .bind(to_ms(operation.created_at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                // The key's row was there before this transaction's insert: read it back.
                return self
                    .claimed(claim)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt {
                        what: "idempotency key",
                        detail: format!("key {} vanished", claim.key),
                    });
            }
        }
        sqlx::query(
            "INSERT INTO operations (id, kind, org, environment, target, requested_by, status,
                 progress_done, progress_total, results, error, input, cancel_requested,
                 created_at, started_at, finished_at, owner, lease_until, fence)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                 $17, $18, $19)",
        )
        .bind(operation.id.as_str())
        .bind(operation.kind.as_str())
        .bind(operation.org.as_str())
        .bind(operation.environment.as_deref())
        .bind(operation.target.as_str())
        .bind(operation.requested_by.as_str())
        .bind(operation.status.as_str())
        .bind(operation.progress.done as i64)
        .bind(operation.progress.total as i64)
        .bind(to_json(&operation.results))
        .bind(operation.error.as_ref().map(to_json))
        .bind(to_json(&operation.input))
        .bind(i64::from(operation.cancel_requested))
        .bind(to_ms(operation.created_at))
        .bind(operation.started_at.map(to_ms))
        .bind(operation.finished_at.map(to_ms))
        .bind(holder.map(|(owner, _)| owner))
        .bind(holder.map(|(_, until)| to_ms(until)))
        .bind(i64::from(holder.is_some()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Created::New(operation.clone()))
    }

    /// What an idempotency key already led to, if it was used: the operation (same
    /// request) or the clash (another request). `None`: the key is new.
    pub async fn claimed(&self, claim: &IdempotencyClaim) -> Result<Option<Created>, StoreError> {
        let row = sqlx::query(
            "SELECT request_hash, operation_id FROM idempotency_keys WHERE scope = $1 AND key = $2",
        )
        .bind(claim.scope.as_str())
        .bind(claim.key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let request_hash: String = row.try_get("request_hash")?;
        let operation_id: String = row.try_get("operation_id")?;
        if request_hash != claim.request_hash {
            return Ok(Some(Created::KeyReused { operation_id }));
        }
        let operation =
            self.operation(&operation_id)
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    what: "idempotency key",
                    detail: format!("operation {operation_id} is missing"),
                })?;
        Ok(Some(Created::Replayed(operation)))
    }

    pub async fn operation(&self, id: &str) -> Result<Option<Operation>, StoreError> {
        let row = sqlx::query(&format!("{OPERATION_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(operation_from_row).transpose()
    }

    /// Operations, newest first, one page at a time.
    pub async fn operations(
        &self,
        filter: &OperationFilter,
        page: &PageRequest,
    ) -> Result<(Vec<Operation>, Option<String>), StoreError> {
        let mut conditions = Conditions::default();
        if let Some(org) = &filter.org {
            conditions.push("org = ?", Arg::Text(org.clone()));
        }
        if let Some(status) = filter.status {
            conditions.push("status = ?", Arg::Text(status.as_str().into()));
        }
        if let Some(kind) = &filter.kind {
            conditions.push("kind = ?", Arg::Text(kind.clone()));
        }
        if let Some(since) = filter.since {
            conditions.push("created_at >= ?", Arg::Int(to_ms(since)));
        }
        self.page(
            OPERATION_SELECT,
            conditions,
            page,
            operation_from_row,
            |op| &op.id,
        )
        .await
    }

    /// Moves a pending or running operation to running. False when it has already ended
    /// (e.g. it was cancelled before it started), or when `hold` is no longer its holder's.
    pub async fn mark_running(
        &self,
        id: &str,
        hold: Option<&Hold>,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let query = fenced(
            "UPDATE operations SET status = 'running', started_at = COALESCE(started_at, $2)
             WHERE id = $1 AND status IN ('pending', 'running')",
            hold,
            3,
        );
        let changed = with_hold(sqlx::query(&query).bind(id).bind(to_ms(at)), hold)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    /// Saves how far a running operation has come and how many backend calls it made, and
    /// answers whether a cancel was asked for meanwhile. Under a `hold` that is no longer
    /// the operation's, nothing is saved: [`StoreError::Fenced`].
    pub async fn save_progress(
        &self,
        id: &str,
        hold: Option<&Hold>,
        progress: Progress,
        results: &[TargetResult],
        backend_calls: u64,
    ) -> Result<Saved, StoreError> {
        let query = fenced(
            "UPDATE operations SET progress_done = $2, progress_total = $3, results = $4,
                 backend_calls = $5 WHERE id = $1",
            hold,
            6,
        ) + " RETURNING cancel_requested";
        let row = with_hold(
            sqlx::query(&query)
                .bind(id)
                .bind(progress.done as i64)
                .bind(progress.total as i64)
                .bind(to_json(&results))
                .bind(backend_calls as i64),
            hold,
        )
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Saved {
                cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
            }),
            None => Err(StoreError::Fenced { id: id.to_string() }),
        }
    }

    /// Ends an operation that has not ended yet. False when it had already ended, or when
    /// `hold` is no longer its holder's.
    pub async fn finish_operation(
        &self,
        id: &str,
        hold: Option<&Hold>,
        status: OperationStatus,
        error: Option<&OperationError>,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let query = fenced(
            "UPDATE operations SET status = $2, error = $3, finished_at = $4, owner = NULL,
                 lease_until = NULL
             WHERE id = $1 AND status IN ('pending', 'running')",
            hold,
            5,
        );
        let changed = with_hold(
            sqlx::query(&query)
                .bind(id)
                .bind(status.as_str())
                .bind(error.map(to_json))
                .bind(to_ms(at)),
            hold,
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        if changed == 1 {
            self.notify(&format!("ended:{id}")).await?;
        }
        Ok(changed == 1)
    }

    /// Asks a pending or running operation to stop at its next step. False when it has
    /// already ended.
    pub async fn request_cancel(&self, id: &str) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE operations SET cancel_requested = 1
             WHERE id = $1 AND status IN ('pending', 'running')",
        )
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if changed == 1 {
            self.notify(&format!("cancel:{id}")).await?;
        }
        Ok(changed == 1)
    }

    // ---- audit log ----------------------------------------------------------------------

    /// Appends an entry. The store has no way to edit or delete one.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, token_id, token_name, org, role, method, route, target,
                 operation_id, outcome, status_code, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(entry.id.as_str())
        .bind(to_ms(entry.at))
        .bind(entry.token_id.as_str())
        .bind(entry.token_name.as_str())
        .bind(entry.org.as_str())
        .bind(entry.role.as_str())
        .bind(entry.method.as_str())
        .bind(entry.route.as_str())
        .bind(entry.target.as_str())
        .bind(entry.operation_id.as_deref())
        .bind(entry.outcome.as_str())
        .bind(i64::from(entry.status_code))
        .bind(entry.request_id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Audit entries, newest first, one page at a time.
    pub async fn audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError> {
        let mut conditions = Conditions::default();
        if let Some(org) = &filter.org {
            conditions.push("org = ?", Arg::Text(org.clone()));
        }
        if let Some(token_id) = &filter.token_id {
            conditions.push("token_id = ?", Arg::Text(token_id.clone()));
        }
        if let Some(operation_id) = &filter.operation_id {
            conditions.push("operation_id = ?", Arg::Text(operation_id.clone()));
        }
        if let Some(since) = filter.since {
            conditions.push("at >= ?", Arg::Int(to_ms(since)));
        }
        self.page(AUDIT_SELECT, conditions, page, audit_from_row, |e| &e.id)
            .await
    }

    // ---- events -------------------------------------------------------------------------

    /// Records an event unless the resource's latest event is the same change (`digest`),
    /// as another server keeping its own inventory saw and recorded it. Answers whether it
    /// was recorded.
    pub async fn record_event(&self, event: &Event, digest: &str) -> Result<bool, StoreError> {
        let latest: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM events WHERE environment = $1 AND resource = $2
             ORDER BY id DESC LIMIT 1",
        )
        .bind(event.environment.as_str())
        .bind(event.resource.as_str())
        .fetch_optional(&self.pool)
        .await?;
        if latest.as_deref() == Some(digest) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO events (id, at, environment, kind, resource_kind, resource, org, detail, digest)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(event.id.as_str())
        .bind(to_ms(event.at))
        .bind(event.environment.as_str())
        .bind(event.kind.as_str())
        .bind(event.resource_kind.as_str())
        .bind(event.resource.as_str())
        .bind(event.org.as_deref())
        .bind(event.detail.to_string())
        .bind(digest)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// Events, newest first, one page at a time.
    pub async fn events(
        &self,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<(Vec<Event>, Option<String>), StoreError> {
        let mut conditions = Conditions::default();
        if let Some(org) = &filter.org {
            conditions.push("org = ?", Arg::Text(org.clone()));
        }
        if let Some(environment) = &filter.environment {
            conditions.push("environment = ?", Arg::Text(environment.clone()));
        }
        if let Some(kind) = filter.kind {
            conditions.push("kind = ?", Arg::Text(kind.as_str().into()));
        }
        if let Some(resource_kind) = &filter.resource_kind {
            conditions.push("resource_kind = ?", Arg::Text(resource_kind.clone()));
        }
        if let Some(resource) = &filter.resource {
            conditions.push("resource = ?", Arg::Text(resource.clone()));
        }
        self.page(EVENT_SELECT, conditions, page, event_from_row, |e| &e.id)
            .await
    }

    /// One page of `select`, newest id first; the next page starts below the last id shown.
    async fn page<T>(
        &self,
        select: &str,
        mut conditions: Conditions,
        page: &PageRequest,
        from_row: fn(&AnyRow) -> Result<T, StoreError>,
        id_of: fn(&T) -> &String,
    ) -> Result<(Vec<T>, Option<String>), StoreError> {
        if let Some(after) = &page.after {
            conditions.push("id < ?", Arg::Text(after.clone()));
        }
        let limit = page.limit.clamp(1, MAX_PAGE);
        // One row more than asked tells whether another page follows.
        let sql = format!(
            "{select} {} ORDER BY id DESC LIMIT {}",
            conditions.sql(),
            limit + 1
        );
        let rows = conditions
            .bind(sqlx::query(&sql))
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows.iter().map(from_row).collect::<Result<Vec<T>, _>>()?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|item| id_of(item).clone())
        } else {
            None
        };
        Ok((items, next))
    }
}

const ACCESS_KEY_SELECT: &str =
    "SELECT k.id, k.token_id, t.org, k.environment, k.created_at, k.revoked_at
     FROM access_keys k JOIN tokens t ON t.id = k.token_id";

fn access_key_from_row(row: &AnyRow) -> Result<AccessKey, StoreError> {
    Ok(AccessKey {
        id: row.try_get("id")?,
        token_id: row.try_get("token_id")?,
        org: row.try_get("org")?,
        environment: row.try_get("environment")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_ms)
            .transpose()?,
    })
}

const TOKEN_SELECT: &str =
    "SELECT id, name, org, role, created_at, expires_at, revoked_at, created_by FROM tokens";

const OPERATION_SELECT: &str = "SELECT id, kind, org, environment, target, requested_by, status,
    progress_done, progress_total, results, error, input, cancel_requested, created_at,
    started_at, finished_at, backend_calls FROM operations";

const AUDIT_SELECT: &str = "SELECT id, at, token_id, token_name, org, role, method, route, target,
    operation_id, outcome, status_code, request_id FROM audit_log";

fn token_from_row(row: &AnyRow) -> Result<TokenInfo, StoreError> {
    Ok(TokenInfo {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        org: row.try_get("org")?,
        role: parse_role(&row.try_get::<String, _>("role")?)?,
        created_at: from_ms(row.try_get("created_at")?)?,
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(from_ms)
            .transpose()?,
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(from_ms)
            .transpose()?,
        created_by: row.try_get("created_by")?,
    })
}

pub(crate) fn operation_from_row(row: &AnyRow) -> Result<Operation, StoreError> {
    let status: String = row.try_get("status")?;
    let error: Option<String> = row.try_get("error")?;
    Ok(Operation {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        org: row.try_get("org")?,
        environment: row.try_get("environment")?,
        target: row.try_get("target")?,
        requested_by: row.try_get("requested_by")?,
        status: OperationStatus::parse("status", &status).map_err(|e| corrupt("operation", e))?,
        progress: Progress {
            done: row.try_get::<i64, _>("progress_done")? as u64,
            total: row.try_get::<i64, _>("progress_total")? as u64,
        },
        results: from_json("operation results", &row.try_get::<String, _>("results")?)?,
        error: error
            .as_deref()
            .map(|e| from_json("operation error", e))
            .transpose()?,
        input: from_json("operation input", &row.try_get::<String, _>("input")?)?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        backend_calls: row.try_get::<i64, _>("backend_calls")? as u64,
        created_at: from_ms(row.try_get("created_at")?)?,
        started_at: row
            .try_get::<Option<i64>, _>("started_at")?
            .map(from_ms)
            .transpose()?,
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at")?
            .map(from_ms)
            .transpose()?,
    })
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: from_ms(row.try_get("at")?)?,
        token_id: row.try_get("token_id")?,
        token_name: row.try_get("token_name")?,
        org: row.try_get("org")?,
        role: parse_role(&row.try_get::<String, _>("role")?)?,
        method: row.try_get("method")?,
        route: row.try_get("route")?,
        target: row.try_get("target")?,
        operation_id: row.try_get("operation_id")?,
        outcome: row.try_get("outcome")?,
        status_code: u16::try_from(row.try_get::<i64, _>("status_code")?)
            .map_err(|e| corrupt("audit entry", e))?,
        request_id: row.try_get("request_id")?,
    })
}

const EVENT_SELECT: &str =
    "SELECT id, at, environment, kind, resource_kind, resource, org, detail FROM events";

fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
    let kind: String = row.try_get("kind")?;
    let detail: String = row.try_get("detail")?;
    Ok(Event {
        id: row.try_get("id")?,
        at: from_ms(row.try_get("at")?)?,
        environment: row.try_get("environment")?,
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt("event kind", &kind))?,
        resource_kind: row.try_get("resource_kind")?,
        resource: row.try_get("resource")?,
        org: row.try_get("org")?,
        detail: serde_json::from_str(&detail).map_err(|e| corrupt("event detail", e))?,
    })
}

fn parse_role(s: &str) -> Result<Role, StoreError> {
    s.parse().map_err(|e| corrupt("role", e))
}

fn corrupt(what: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Serializing plain data (strings, numbers, maps with string keys) cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

/// Times are stored as Unix milliseconds: portable, sortable, and precise enough.
pub fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_ms(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| corrupt("time", e))
}

/// Creates the SQLite file of `url` with mode 0600 if it does not exist yet, so the store
/// (hashes, operations, the audit log) is never readable by other local users.
fn create_private_file(url: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(':') {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::File {
            path: path.to_string(),
            source,
        }),
    }
}

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn conditions_number_their_placeholders() {
        let mut c = Conditions::default();
        c.push("org = ?", Arg::Text("a".into()));
        c.push("at >= ?", Arg::Int(5));
        assert_eq!(c.sql(), "WHERE org = $1 AND at >= $2");
    }
}
