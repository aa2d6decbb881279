//! Typed changes, after omicron's sagas: each kind of operation is a type that names its
//! stored kinds, its input and how to carry it out, and the server's one list of them
//! (`register_changes!`) is the only way to make a change startable.

use async_trait::async_trait;
use overcast_types::Error;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

use super::context::OperationContext;

/// One kind of recorded change: the operation kinds it carries out (as stored), what an
/// operation of it records, and how to carry it out. `run` must be safe to repeat: after a
/// crash the runner calls it again with the results saved so far.
#[async_trait]
pub trait Change: Send + Sync + 'static {
    /// Every kind this change carries out; one input maps to one of them by [`Change::kind`].
    const KINDS: &'static [&'static str];

    /// What the operation records: all a re-run needs, never a secret.
    type Input: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The stored kind of one input.
    fn kind(input: &Self::Input) -> &'static str {
        let _ = input;
        Self::KINDS[0]
    }

    async fn run(&self, input: Self::Input, cx: &mut OperationContext) -> Result<(), Error>;
}

/// The input of a change in one environment: the environment's name and what to do there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InEnvironment<T> {
    pub environment: String,
    pub change: T,
}

impl<T> InEnvironment<T> {
    pub fn new(environment: &str, change: T) -> Self {
        InEnvironment {
            environment: environment.to_string(),
            change,
        }
    }
}

/// A change in the server's list: only these can be started (`Core::start` requires it),
/// so a change that is not registered does not compile where it is started.
pub trait Registered: Change {}

/// What the runner calls: a change with its input still as stored.
#[async_trait]
pub(crate) trait Executor: Send + Sync {
    async fn run(&self, cx: &mut OperationContext) -> Result<(), Error>;
}

struct Typed<C>(Arc<C>);

#[async_trait]
impl<C: Change> Executor for Typed<C> {
    async fn run(&self, cx: &mut OperationContext) -> Result<(), Error> {
        let input: C::Input = cx.input()?;
        self.0.run(input, cx).await
    }
}

/// The executors of every registered kind.
#[derive(Default, Clone)]
pub struct Registry {
    by_kind: HashMap<&'static str, Arc<dyn Executor>>,
}

impl Registry {
    /// Adds a change under each of its kinds.
    ///
    /// # Panics
    /// When a kind is already taken: two changes must never claim one stored kind.
    pub fn with<C: Change>(mut self, change: C) -> Self {
        let change = Arc::new(change);
        for kind in C::KINDS {
            let executor = Arc::new(Typed(change.clone()));
            assert!(
                self.by_kind.insert(kind, executor).is_none(),
                "the operation kind `{kind}` is registered twice"
            );
        }
        self
    }

    pub(crate) fn executor(&self, kind: &str) -> Option<Arc<dyn Executor>> {
        self.by_kind.get(kind).cloned()
    }

    /// Every registered kind, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self.by_kind.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }
}

/// The server's list of changes, each a unit struct: marks each [`Registered`] and makes
/// the function that builds the registry.
macro_rules! register_changes {
    ($(#[$meta:meta])* $vis:vis fn $name:ident() { $($change:path),+ $(,)? }) => {
        $(impl $crate::operations::Registered for $change {})+
        $(#[$meta])*
        $vis fn $name() -> $crate::operations::Registry {
            $crate::operations::Registry::default()$(.with::<$change>($change))+
        }
    };
}
pub(crate) use register_changes;
