//! The overcast application: config, environments, authorization, tokens, the audit trail
//! and the operation runner. Handlers call [`Core`]; it calls providers and the store, and
//! decides everything in between.

pub mod auth;
pub mod buckets;
pub mod bulk;
pub mod config;
pub mod environments;
pub mod firewall;
pub mod images;
pub mod instances;
pub mod keypairs;
pub mod metrics;
pub mod objects;
pub mod operations;
pub mod tokens;

use overcast_provider::{ProviderError, ProviderErrorKind};
pub use overcast_store::{AuditFilter, OperationFilter, PageRequest, MAX_PAGE};
use overcast_store::{Created, IdempotencyClaim, Store, StoreError};
use overcast_types::{
    AuditEntry, Error, ErrorKind, Instance, Operation, OperationStatus, Owned, Page, Progress,
    Role, TokenInfo,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

use auth::{hash_secret, new_secret, Principal};
use config::{Config, ProviderKind};
use environments::{EnvironmentView, Environments, MachineTypeView, ProviderFactory};
use metrics::Metrics;
use operations::{Executor, Runner};

/// The org of the bootstrap admin token.
pub const ADMIN_ORG: &str = "admin";

/// Now, at the store's precision (milliseconds), so a value reads back as it was written.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t)
}

/// A provider error as the API shows it: the class decides the status; the message keeps
/// the backend's code and request id.
pub(crate) fn provider_error(e: ProviderError) -> Error {
    let message = e.to_string();
    let mut error = match e.kind {
        ProviderErrorKind::NotFound => Error::new(ErrorKind::NotFound, e.code, message),
        ProviderErrorKind::InvalidInput => Error::new(ErrorKind::InvalidInput, e.code, message),
        ProviderErrorKind::Conflict => Error::new(ErrorKind::Conflict, e.code, message),
        ProviderErrorKind::Denied => Error::new(ErrorKind::Forbidden, e.code, message),
        ProviderErrorKind::Throttled | ProviderErrorKind::Unavailable => {
            Error::unavailable(e.code, message, 5)
        }
        ProviderErrorKind::Capacity => Error::unavailable(e.code, message, 30),
        ProviderErrorKind::NoRoom => Error::new(ErrorKind::InsufficientCapacity, e.code, message),
        ProviderErrorKind::Timeout => Error::new(ErrorKind::BackendTimeout, e.code, message),
        ProviderErrorKind::Refused => Error::new(ErrorKind::BackendRefused, e.code, message),
        ProviderErrorKind::Unsupported => Error::new(ErrorKind::Unsupported, e.code, message),
        ProviderErrorKind::RangeNotSatisfiable => {
            Error::new(ErrorKind::RangeNotSatisfiable, e.code, message)
        }
    };
    error.field = e.field.map(str::to_string);
    error
}

/// A store fault as the API shows it: logged in full, answered without internals.
pub(crate) fn store_error(e: StoreError) -> Error {
    tracing::error!(error = %e, "store error");
    Error::internal("the database failed; see the server log")
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

/// How the first admin token came to be, for the server to tell its operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// The store already had tokens.
    Existing,
    /// Created from `OVERCAST_ADMIN_TOKEN`.
    FromEnvironment,
    /// Created and written to this 0600 file.
    WrittenTo(PathBuf),
}

/// An idempotency key and the hash of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// What one finished authenticated change was, for the audit log.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub method: String,
    pub route: String,
    pub target: String,
    pub operation_id: Option<String>,
    pub status_code: u16,
    pub request_id: String,
}

/// The store and each environment's backend, as `/readyz` reports them.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub store: bool,
    pub environments: Vec<EnvironmentReadiness>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EnvironmentReadiness {
    pub name: String,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The application. One per server.
pub struct Core {
    config: Config,
    store: Store,
    runner: Runner,
    environments: Arc<Environments>,
    metrics: Arc<Metrics>,
    snapshots: instances::Snapshots,
    bucket_homes: objects::BucketHomes,
}

/// A kind of resource that takes tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagged {
    Instance,
    Image,
    SecurityGroup,
}

impl Tagged {
    pub const ALL: [Tagged; 3] = [Tagged::Instance, Tagged::Image, Tagged::SecurityGroup];

    fn operation_kind(self) -> &'static str {
        match self {
            Tagged::Instance => "instance.tag",
            Tagged::Image => "image.tag",
            Tagged::SecurityGroup => "security_group.tag",
        }
    }
}

/// What a create request led to.
#[derive(Debug, Clone)]
pub enum Launch {
    /// The backend says the launch would be allowed; nothing was launched.
    DryRun,
    /// The operation that launches the instances.
    Started(Box<Operation>),
}

impl Core {
    /// Opens the store (creating the data dir), makes the environments, creates the first
    /// admin token if the store has none, and resumes unfinished operations.
    /// `admin_secret` (from `OVERCAST_ADMIN_TOKEN`) becomes the first admin token's secret
    /// instead of a generated one.
    pub async fn open(
        config: Config,
        providers: HashMap<ProviderKind, ProviderFactory>,
        admin_secret: Option<String>,
    ) -> Result<(Arc<Core>, Bootstrap), Error> {
        let data_dir = config.data_dir();
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            Error::internal(format!(
                "cannot create the data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let store = Store::connect(&config.database_url())
            .await
            .map_err(|e| Error::internal(format!("cannot open the database: {e}")))?;
        let metrics = Arc::new(Metrics::new());
        let mut executors: HashMap<String, Arc<dyn Executor>> = HashMap::new();
        executors.insert(
            tokens::CREATE_KIND.into(),
            Arc::new(tokens::CreateExecutor {
                store: store.clone(),
            }),
        );
        executors.insert(
            tokens::REVOKE_KIND.into(),
            Arc::new(tokens::RevokeExecutor {
                store: store.clone(),
            }),
        );
        let environments = Arc::new(Environments::from_config(
            &config,
            &providers,
            metrics.clone(),
        ));
        executors.insert(
            instances::CREATE_KIND.into(),
            Arc::new(instances::CreateExecutor {
                environments: environments.clone(),
            }),
        );
        for action in bulk::BulkAction::ALL {
            executors.insert(
                action.kind(),
                Arc::new(bulk::BulkExecutor {
                    environments: environments.clone(),
                }),
            );
        }
        for kind in [
            firewall::CREATE_KIND,
            firewall::DELETE_KIND,
            firewall::ADD_RULE_KIND,
            firewall::REMOVE_RULE_KIND,
        ] {
            executors.insert(
                kind.into(),
                Arc::new(firewall::FirewallExecutor {
                    environments: environments.clone(),
                }),
            );
        }
        for kind in [
            keypairs::CREATE_KIND,
            keypairs::IMPORT_KIND,
            keypairs::DELETE_KIND,
        ] {
            executors.insert(
                kind.into(),
                Arc::new(keypairs::KeyPairExecutor {
                    environments: environments.clone(),
                }),
            );
        }
        for kind in [buckets::CREATE_KIND, buckets::DELETE_KIND] {
            executors.insert(
                kind.into(),
                Arc::new(buckets::BucketExecutor {
                    environments: environments.clone(),
                }),
            );
        }
        for kind in [
            objects::DELETE_KIND,
            objects::DELETE_PREFIX_KIND,
            objects::COPY_KIND,
        ] {
            executors.insert(
                kind.into(),
                Arc::new(objects::ObjectExecutor {
                    environments: environments.clone(),
                }),
            );
        }
        for kind in [
            images::CREATE_KIND,
            images::DELETE_KIND,
            images::IMPORT_KIND,
        ] {
            executors.insert(
                kind.into(),
                Arc::new(images::ImageExecutor {
                    environments: environments.clone(),
                }),
            );
        }
        executors.insert(
            instances::MODIFY_KIND.into(),
            Arc::new(instances::ModifyExecutor {
                environments: environments.clone(),
            }),
        );
        for tagged in Tagged::ALL {
            executors.insert(
                tagged.operation_kind().into(),
                Arc::new(instances::TagExecutor {
                    environments: environments.clone(),
                }),
            );
        }
        let runner = Runner::new(store.clone(), metrics.clone(), executors);
        let core = Arc::new(Core {
            config,
            store,
            runner,
            environments,
            metrics,
            snapshots: instances::Snapshots::default(),
            bucket_homes: objects::BucketHomes::default(),
        });
        let bootstrap = core.bootstrap_admin(admin_secret).await?;
        core.runner.resume_unfinished().await?;
        Ok((core, bootstrap))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Closes the store after in-flight work has stopped using it.
    pub async fn close(&self) {
        self.store.close().await;
    }

    async fn bootstrap_admin(&self, from_env: Option<String>) -> Result<Bootstrap, Error> {
        if self.store.token_count().await.map_err(store_error)? > 0 {
            return Ok(Bootstrap::Existing);
        }
        let (secret, bootstrap) = match from_env.filter(|s| !s.is_empty()) {
            Some(secret) => (secret, Bootstrap::FromEnvironment),
            None => {
                let secret = new_secret();
                let path = self.config.data_dir().join("admin-token");
                write_private_file(&path, &format!("{secret}\n")).map_err(|e| {
                    Error::internal(format!("cannot write {}: {e}", path.display()))
                })?;
                (secret, Bootstrap::WrittenTo(path))
            }
        };
        let token = TokenInfo {
            id: new_id("tok"),
            name: "bootstrap-admin".into(),
            org: ADMIN_ORG.into(),
            role: Role::Admin,
            created_at: now(),
            expires_at: None,
            revoked_at: None,
            created_by: "bootstrap".into(),
        };
        self.store
            .insert_token(&token, &hash_secret(&secret))
            .await
            .map_err(store_error)?;
        Ok(bootstrap)
    }

    /// The principal behind a bearer secret; 401 for an unknown, revoked or expired one.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal, Error> {
        let token = self
            .store
            .token_by_hash(&hash_secret(secret))
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::unauthenticated("the token is not valid"))?;
        if token.revoked_at.is_some() {
            return Err(Error::unauthenticated("the token has been revoked"));
        }
        if token
            .expires_at
            .is_some_and(|at| at <= OffsetDateTime::now_utc())
        {
            return Err(Error::unauthenticated("the token has expired"));
        }
        Ok(token.into())
    }

    pub async fn readiness(&self) -> Readiness {
        let store = self.store.ping().await.is_ok();
        let mut environments = Vec::new();
        for env in self.environments.iter() {
            let status = env.provider.status().await;
            environments.push(EnvironmentReadiness {
                name: env.name.clone(),
                reachable: status.reachable,
                reason: status.reason,
            });
        }
        Readiness {
            ready: store,
            store,
            environments,
        }
    }

    // ---- environments ---------------------------------------------------------------------

    pub async fn environments(&self) -> Vec<EnvironmentView> {
        let mut views = Vec::new();
        for env in self.environments.iter() {
            views.push(env.view().await);
        }
        views
    }

    pub async fn environment(&self, name: &str) -> Result<EnvironmentView, Error> {
        Ok(self.environments.require(name)?.view().await)
    }

    pub fn machine_types(&self) -> Vec<MachineTypeView> {
        self.config
            .machine_types
            .iter()
            .map(|(name, machine)| MachineTypeView {
                name: name.clone(),
                machine: machine.clone(),
            })
            .collect()
    }

    // ---- operations -----------------------------------------------------------------------

    /// Records a new operation (or finds the one its idempotency key led to) and starts it.
    #[allow(clippy::too_many_arguments)]
    async fn start_operation(
        &self,
        principal: &Principal,
        kind: &str,
        org: &str,
        environment: Option<&str>,
        target: String,
        input: serde_json::Value,
        idempotency: Option<&Idempotency>,
    ) -> Result<(Operation, bool), Error> {
        let operation = Operation {
            id: new_id("op"),
            kind: kind.into(),
            org: org.into(),
            environment: environment.map(str::to_string),
            target,
            requested_by: principal.token_name.clone(),
            status: OperationStatus::Pending,
            progress: Progress::default(),
            results: vec![],
            error: None,
            cancel_requested: false,
            backend_calls: 0,
            created_at: now(),
            started_at: None,
            finished_at: None,
            input,
        };
        let claim = idempotency.map(|i| IdempotencyClaim {
            scope: principal.org.clone(),
            key: i.key.clone(),
            request_hash: i.request_hash.clone(),
        });
        match self
            .store
            .create_operation(&operation, claim.as_ref())
            .await
            .map_err(store_error)?
        {
            Created::New(operation) => {
                self.metrics.operation(kind, OperationStatus::Pending.as_str());
                self.runner.submit(operation.clone());
                Ok((operation, true))
            }
            Created::Replayed(operation) => Ok((operation, false)),
            Created::KeyReused { operation_id } => Err(Error::conflict(
                "idempotency_key_reused",
                format!(
                    "this Idempotency-Key was used with a different request (operation {operation_id})"
                ),
            )),
        }
    }

    /// One operation, if the caller may see it.
    pub async fn operation(&self, principal: &Principal, id: &str) -> Result<Operation, Error> {
        match self.store.operation(id).await.map_err(store_error)? {
            Some(op) if principal.can_see(&op.org) => Ok(op),
            _ => Err(Error::not_found("operation", id)),
        }
    }

    pub async fn operations(
        &self,
        principal: &Principal,
        mut filter: OperationFilter,
        page: PageRequest,
    ) -> Result<Page<Operation>, Error> {
        filter.org = principal.org_filter();
        let (items, next_page_token) = self
            .store
            .operations(&filter, &page)
            .await
            .map_err(store_error)?;
        Ok(Page {
            items,
            next_page_token,
        })
    }

    /// Waits up to `timeout` for an operation the caller may see to end.
    pub async fn wait(
        &self,
        principal: &Principal,
        id: &str,
        timeout: Duration,
    ) -> Result<Operation, Error> {
        self.operation(principal, id).await?;
        self.runner.wait(id, timeout).await
    }

    pub async fn cancel(&self, principal: &Principal, id: &str) -> Result<Operation, Error> {
        self.operation(principal, id).await?;
        self.runner.cancel(id).await
    }

    // ---- audit ----------------------------------------------------------------------------

    /// Appends an authenticated change to the audit log.
    pub async fn record_audit(
        &self,
        principal: &Principal,
        record: AuditRecord,
    ) -> Result<(), Error> {
        let outcome = match record.status_code {
            202 => "accepted",
            200..=299 => "succeeded",
            401 | 403 => "denied",
            _ => "failed",
        };
        let entry = AuditEntry {
            id: new_id("au"),
            at: now(),
            token_id: principal.token_id.clone(),
            token_name: principal.token_name.clone(),
            org: principal.org.clone(),
            role: principal.role,
            method: record.method,
            route: record.route,
            target: record.target,
            operation_id: record.operation_id,
            outcome: outcome.into(),
            status_code: record.status_code,
            request_id: record.request_id,
        };
        self.store.append_audit(&entry).await.map_err(store_error)
    }

    pub async fn audit(
        &self,
        principal: &Principal,
        mut filter: AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>, Error> {
        filter.org = principal.org_filter();
        let (items, next_page_token) = self
            .store
            .audit(&filter, &page)
            .await
            .map_err(store_error)?;
        Ok(Page {
            items,
            next_page_token,
        })
    }
}

/// Whether a caller may see an instance: admins all, others their org's. An instance with
/// no org (no tag, no default org) is for admins only.
fn visible(principal: &Principal, instance: &Instance) -> bool {
    visible_org(principal, instance.org.as_deref())
}

/// The resources the caller may see, with their owning org set.
fn visible_only<T: Owned>(
    principal: &Principal,
    environment: &environments::Environment,
    found: Vec<T>,
) -> Vec<T> {
    found
        .into_iter()
        .map(|r| environment.own(r))
        .filter(|r| visible_org(principal, r.org()))
        .collect()
}

/// Whether a caller may see a resource owned by `org` (none: admins only).
fn visible_org(principal: &Principal, org: Option<&str>) -> bool {
    match org {
        Some(org) => principal.can_see(org),
        None => principal.role == Role::Admin,
    }
}

fn to_input<T: serde::Serialize>(input: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(input).map_err(|e| Error::internal(e.to_string()))
}

/// Writes a file only its owner can read, creating it with that mode so it is never
/// readable by others, even for a moment.
fn write_private_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}
