//! The facade handlers call: [`Core`] holds the config, store, runner, environments and
//! metrics; opens them (bootstrapping the first admin token and resuming unfinished
//! operations); and starts every change through one generic call, [`Core::start`].
//! Each resource module adds its use cases in an `impl Core` block of its own.

use overcast_provider::ProviderFactories;
use overcast_store::{Backend, Created, Hold, IdempotencyClaim, Store};
use overcast_types::{Error, Operation, OperationStatus, Page, Role, TokenInfo};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

use crate::auth::{hash_secret, new_secret, Principal};
use crate::config::Config;
use crate::environments::{EnvironmentView, Environments, MachineTypeView};
use crate::errors::store_error;
use crate::ids::{new_id, now};
use crate::metrics::Metrics;
use crate::operations::{register_changes, CallCounter, Membership, Registered, Runner};
use crate::{
    access_keys, buckets, compute, containers, images, key_pairs, objects, orchestration,
    parameters, secrets, security_groups, tags, tokens,
};
use overcast_store::{OperationFilter, PageRequest};

/// The org of the bootstrap admin token.
pub const ADMIN_ORG: &str = "admin";

register_changes! {
    /// Every kind of change this server runs: the one list.
    pub(crate) fn registry() {
        tokens::CreateToken,
        tokens::RevokeToken,
        access_keys::AccessKeyChanges,
        compute::CreateInstances,
        compute::ModifyInstance,
        compute::Lifecycle,
        tags::Tag,
        images::ImageChanges,
        security_groups::SecurityGroupChanges,
        key_pairs::KeyPairChanges,
        buckets::BucketChanges,
        objects::ObjectChanges,
        secrets::SecretChanges,
        parameters::ParameterChanges,
        containers::ContainerChanges,
        orchestration::CreateStack,
    }
}

/// How the first admin token came to be, for the server to tell its operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// The store already had tokens, or another server made this one first.
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

/// A server sharing this server's database, as `GET /v1/servers` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ServerView {
    pub id: String,
    pub version: String,
    pub host: String,
    pub pid: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub heartbeat_at: OffsetDateTime,
    /// The unfinished operations it holds.
    pub operations: Vec<String>,
    /// Whether it is the server that answered.
    pub this: bool,
}

/// What an operation acts on and whose it is.
pub(crate) struct Target<'a> {
    environment: Option<&'a str>,
    what: String,
    owner: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// `what` (e.g. `aws-dev/i-123`) in the environment `env`, owned by the caller's org
    /// unless [`Target::owned_by`] names the resource's own.
    pub(crate) fn new(env: &'a str, what: impl Into<String>) -> Self {
        Target {
            environment: Some(env),
            what: what.into(),
            owner: None,
        }
    }

    /// `what`, outside any environment (a token).
    pub(crate) fn global(what: impl Into<String>) -> Self {
        Target {
            environment: None,
            what: what.into(),
            owner: None,
        }
    }

    /// The org of the resource acted on; `None` keeps the caller's.
    pub(crate) fn owned_by(mut self, org: Option<&'a str>) -> Self {
        self.owner = org;
        self
    }
}

/// The application. One per server.
pub struct Core {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) runner: Runner,
    pub(crate) environments: Arc<Environments>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) bucket_homes: objects::BucketHomes,
    /// What the EC2 endpoint's access keys' secrets are derived from.
    pub(crate) master_key: access_keys::MasterKey,
}

impl Core {
    /// Opens the store (creating the data dir), makes the environments, creates the first
    /// admin token if the store has none, and resumes unfinished operations.
    /// `admin_secret` (from `OVERCAST_ADMIN_TOKEN`) becomes the first admin token's secret
    /// instead of a generated one.
    pub async fn open(
        config: Config,
        providers: &ProviderFactories,
        admin_secret: Option<String>,
    ) -> Result<(Arc<Core>, Bootstrap), Error> {
        let data_dir = config.data_dir();
        create_private_dir(&data_dir).map_err(|e| {
            Error::internal(format!(
                "cannot create the data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let store = Store::connect(&config.database_url())
            .await
            .map_err(|e| Error::internal(format!("cannot open the database: {e}")))?;
        let metrics = Arc::new(Metrics::new());
        let environments = Arc::new(Environments::from_config(
            &config,
            providers,
            Arc::new(CallCounter::new(metrics.clone())),
        ));
        let membership = Membership {
            id: new_id("srv"),
            lease: Duration::from_secs(config.operation_lease_secs),
            alone: store.backend() == Backend::Sqlite,
            elsewhere: config
                .environments
                .iter()
                .filter(|(_, env)| !config.serves(env))
                .map(|(name, _)| name.clone())
                .collect(),
        };
        if membership.alone {
            refuse_a_second_server(&store, membership.lease).await?;
        }
        let runner = Runner::new(
            store.clone(),
            metrics.clone(),
            environments.clone(),
            registry(),
            membership,
        );
        let master_key = access_keys::MasterKey::load_or_create(
            &config
                .compat
                .ec2
                .master_key_file
                .clone()
                .unwrap_or_else(|| data_dir.join("ec2-master-key")),
        )?;
        let core = Arc::new(Core {
            master_key,
            config,
            store,
            runner,
            environments,
            metrics,
            bucket_homes: objects::BucketHomes::default(),
        });
        let bootstrap = core.bootstrap_admin(admin_secret).await?;
        core.runner.join().await?;
        core.keep_inventories();
        Ok((core, bootstrap))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every operation kind this server can run.
    pub fn operation_kinds() -> Vec<&'static str> {
        registry().kinds()
    }

    /// Lets the other servers take this one's operations, then closes the store.
    pub async fn close(&self) {
        self.runner.leave().await;
        self.store.close().await;
    }

    /// Makes the first admin token when the store has none.
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
        self.record_admin(&secret, bootstrap).await
    }

    /// Records the first admin token. Servers started together on one store with the same
    /// secret may both get here; the one that records it first stands, and the other
    /// answers [`Bootstrap::Existing`] rather than failing to start.
    pub(crate) async fn record_admin(
        &self,
        secret: &str,
        bootstrap: Bootstrap,
    ) -> Result<Bootstrap, Error> {
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
        let hash = hash_secret(secret);
        self.store
            .insert_token(&token, &hash)
            .await
            .map_err(store_error)?;
        // Another server may have recorded the same secret first; then its token stands.
        match self.store.token_by_hash(&hash).await.map_err(store_error)? {
            Some(recorded) if recorded.id == token.id => Ok(bootstrap),
            Some(_) => Ok(Bootstrap::Existing),
            None => Err(Error::internal(
                "the bootstrap admin token was not recorded",
            )),
        }
    }

    /// The principal behind a bearer secret; 401 for an unknown, revoked or expired one.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal, Error> {
        let token = self
            .store
            .token_by_hash(&hash_secret(secret))
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::unauthenticated("the token is not valid"))?;
        self.usable(token)
    }

    /// The principal of a token that is neither revoked nor expired; 401 otherwise.
    pub(crate) fn usable(&self, token: TokenInfo) -> Result<Principal, Error> {
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

    /// The live servers on this database (a heartbeat within three leases), with the
    /// operations each holds. Admins only.
    pub async fn servers(&self, principal: &Principal) -> Result<Vec<ServerView>, Error> {
        principal.require(Role::Admin)?;
        let lease = self.runner.membership().lease;
        let live = self
            .store
            .servers(now() - lease * 3)
            .await
            .map_err(store_error)?;
        let held = self.store.held_operations().await.map_err(store_error)?;
        let me = &self.runner.membership().id;
        Ok(live
            .into_iter()
            .map(|server| ServerView {
                operations: held
                    .iter()
                    .filter(|(owner, _)| *owner == server.id)
                    .map(|(_, id)| id.clone())
                    .collect(),
                this: server.id == *me,
                id: server.id,
                version: server.version,
                host: server.host,
                pid: server.pid,
                started_at: server.started_at,
                heartbeat_at: server.heartbeat_at,
            })
            .collect())
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

    /// Records an operation of the change `C` and starts it; or, when the idempotency key
    /// was used before with the same request, answers the operation it led to.
    pub(crate) async fn start<C: Registered>(
        &self,
        principal: &Principal,
        target: Target<'_>,
        input: &C::Input,
        idempotency: Option<&Idempotency>,
    ) -> Result<Operation, Error> {
        let (operation, _) = self
            .record::<C>(principal, target, input, idempotency, None)
            .await?;
        Ok(operation)
    }

    /// [`Core::start`] for a change that needs a value it must never record (a secret's
    /// value): the value goes to the change in memory, see
    /// [`crate::operations::OperationContext::take_given`].
    pub(crate) async fn start_giving<C: Registered>(
        &self,
        principal: &Principal,
        target: Target<'_>,
        input: &C::Input,
        idempotency: Option<&Idempotency>,
        value: String,
    ) -> Result<Operation, Error> {
        let (operation, _) = self
            .record::<C>(principal, target, input, idempotency, Some(value))
            .await?;
        Ok(operation)
    }

    /// [`Core::start`], saying too whether this call made the operation (`false`: a replay).
    pub(crate) async fn record<C: Registered>(
        &self,
        principal: &Principal,
        target: Target<'_>,
        input: &C::Input,
        idempotency: Option<&Idempotency>,
        given: Option<String>,
    ) -> Result<(Operation, bool), Error> {
        let kind = C::kind(input);
        let input = serde_json::to_value(input).map_err(|e| Error::internal(e.to_string()))?;
        let operation = Operation {
            environment: target.environment.map(str::to_string),
            ..Operation::pending(
                new_id("op"),
                kind,
                target.owner.unwrap_or(&principal.org),
                target.what,
                &principal.token_name,
                now(),
                input,
            )
        };
        let claim = idempotency.map(|i| IdempotencyClaim {
            scope: principal.org.clone(),
            key: i.key.clone(),
            request_hash: i.request_hash.clone(),
        });
        // Given before the operation exists, so its change finds the value however soon
        // it starts.
        let id = operation.id.clone();
        if let Some(value) = given {
            self.runner.give(&id, value);
        }
        let created = self
            .store
            .create_held_operation(
                &operation,
                claim.as_ref(),
                &self.runner.membership().id,
                self.runner.lease_until(),
            )
            .await
            .map_err(store_error);
        if !matches!(created, Ok(Created::New(_))) {
            self.runner.take_back(&id);
        }
        match created? {
            Created::New(operation) => {
                self.metrics
                    .operation(kind, OperationStatus::Pending.as_str());
                let hold = Hold {
                    owner: self.runner.membership().id.clone(),
                    fence: 1,
                };
                self.runner.submit(operation.clone(), hold);
                Ok((operation, true))
            }
            Created::Replayed(operation) => Ok((operation, false)),
            Created::KeyReused { operation_id } => Err(key_reused(&operation_id)),
        }
    }

    /// The operation an idempotency key already led to, for a use case to answer before it
    /// looks anything up or plans: a retry after success would otherwise find the
    /// resource gone or nothing left to do, and answer that instead of the original
    /// operation. The same key with another request is a 409.
    pub(crate) async fn replayed(
        &self,
        principal: &Principal,
        idempotency: Option<&Idempotency>,
    ) -> Result<Option<Operation>, Error> {
        let Some(idempotency) = idempotency else {
            return Ok(None);
        };
        let claim = IdempotencyClaim {
            scope: principal.org.clone(),
            key: idempotency.key.clone(),
            request_hash: idempotency.request_hash.clone(),
        };
        match self.store.claimed(&claim).await.map_err(store_error)? {
            None | Some(Created::New(_)) => Ok(None),
            Some(Created::Replayed(operation)) => Ok(Some(operation)),
            Some(Created::KeyReused { operation_id }) => Err(key_reused(&operation_id)),
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
        Ok(Page::of(items, next_page_token))
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

    /// An operation the caller may see, as it is now and again each time it changes, until
    /// it has ended. It is read from the store every [`FOLLOW_POLL`], so it follows the
    /// operation on whichever server runs it. A read that fails ends the stream with its
    /// error.
    pub fn follow(
        self: &Arc<Self>,
        principal: &Principal,
        id: &str,
    ) -> impl futures::Stream<Item = Result<Operation, Error>> + Send + 'static {
        struct Following {
            core: Arc<Core>,
            principal: Principal,
            id: String,
            last: Option<Operation>,
            done: bool,
        }
        let start = Following {
            core: self.clone(),
            principal: principal.clone(),
            id: id.to_string(),
            last: None,
            done: false,
        };
        futures::stream::unfold(start, |mut following| async move {
            if following.done {
                return None;
            }
            loop {
                let read = following
                    .core
                    .operation(&following.principal, &following.id)
                    .await;
                match read {
                    Err(e) => {
                        following.done = true;
                        return Some((Err(e), following));
                    }
                    Ok(operation) if following.last.as_ref() != Some(&operation) => {
                        following.done = operation.status.is_final();
                        following.last = Some(operation.clone());
                        return Some((Ok(operation), following));
                    }
                    Ok(_) => tokio::time::sleep(FOLLOW_POLL).await,
                }
            }
        })
    }

    pub async fn cancel(&self, principal: &Principal, id: &str) -> Result<Operation, Error> {
        self.operation(principal, id).await?;
        self.runner.cancel(id).await
    }
}

/// How often a followed operation is read again.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(250);

fn key_reused(operation_id: &str) -> Error {
    Error::conflict(
        "idempotency_key_reused",
        format!(
            "this Idempotency-Key was used with a different request (operation {operation_id})"
        ),
    )
}

/// Creates a directory (and its missing parents) only its owner can enter, so the store,
/// the bootstrap token and local VMs' disks are never open to other local users. An
/// existing directory is left as its owner made it.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Writes a file only its owner can read, creating it with that mode so it is never
/// readable by others, even for a moment.
pub(crate) fn write_private_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
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

/// Whether a process of this host runs: a killed one not yet reaped (a zombie) does not.
fn process_runs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X'))
    })
}

/// One SQLite database serves one server: another live server process on it (a fresh
/// heartbeat, and on this host a process that still runs) is refused with a word on
/// PostgreSQL. Servers of this very process (tests open several) are not others.
async fn refuse_a_second_server(store: &Store, lease: Duration) -> Result<(), Error> {
    let live = store
        .servers(now() - lease * 3)
        .await
        .map_err(store_error)?;
    let here = crate::config::host_name();
    let other = live
        .iter()
        .find(|s| s.pid != std::process::id() && (s.host != here || process_runs(s.pid)));
    match other {
        None => Ok(()),
        Some(server) => Err(Error::conflict(
            "database_in_use",
            format!(
                "another overcast server ({}, process {} on {}) uses this SQLite database: one SQLite database serves one server; to run several, give them one PostgreSQL database (database_url = \"postgres://...\")",
                server.id, server.pid, server.host
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_registered_once_and_named_by_its_resource() {
        let kinds = Core::operation_kinds();
        for kind in &kinds {
            let (resource, verb) = kind.split_once('.').unwrap_or_default();
            assert!(!resource.is_empty() && !verb.is_empty(), "{kind}");
        }
        for expected in [
            "token.create",
            "instance.stop",
            "bucket.delete",
            "image.tag",
        ] {
            assert!(kinds.contains(&expected), "{expected} is not registered");
        }
    }
}
