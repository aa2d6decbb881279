//! Trying backend work again: which errors pass with time, the backoff between tries, a
//! call safe to repeat repeated through them, and the one way a create that could double
//! finds what an earlier try made before it tries again.

use overcast_provider::{ProviderError, ProviderErrorKind};
use overcast_types::Error;
use std::future::Future;
use std::time::{Duration, Instant};

use super::Cancellation;
use crate::errors::provider_error;

/// How long a change goes on trying through passing errors before the operation fails.
const TRY_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Whether a backend error passes with time: throttling, an unreachable or slow backend,
/// a lost answer. After such an error on a create, the create may or may not have landed.
pub(crate) fn is_passing(error: &ProviderError) -> bool {
    matches!(
        error.kind,
        ProviderErrorKind::Throttled | ProviderErrorKind::Unavailable | ProviderErrorKind::Timeout
    )
}

/// Delays between tries: 250 ms, doubling up to 5 s.
pub(crate) struct Backoff {
    delay: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            delay: Duration::from_millis(250),
        }
    }

    /// Sleeps for the next delay, unless the operation was cancelled.
    pub(crate) async fn wait(&mut self, cancellation: &Cancellation) -> Result<(), Error> {
        cancellation.check()?;
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        Ok(())
    }
}

/// Runs a call that is safe to repeat (a stop, a tag) until it answers, through passing
/// errors the provider's own retries did not outlast: a stop that did land and lost its
/// answer must not leave its targets recorded as failed.
pub(crate) async fn repeatable<T, Call, Answer>(
    what: &str,
    cancellation: &Cancellation,
    mut call: Call,
) -> Result<T, Error>
where
    Call: FnMut() -> Answer,
    Answer: Future<Output = Result<T, ProviderError>>,
{
    let deadline = Instant::now() + TRY_TIMEOUT;
    let mut backoff = Backoff::new();
    loop {
        match call().await {
            Ok(answer) => return Ok(answer),
            Err(e) if is_passing(&e) && Instant::now() < deadline => {
                tracing::warn!(what, error = %e, "a call failed for now; trying it again");
                backoff.wait(cancellation).await?;
            }
            Err(e) => return Err(provider_error(e)),
        }
    }
}

/// Makes something at most once. `find` looks for what an earlier try made (by the
/// operation's tag, by a unique name); only when it finds nothing is `create` tried, once.
/// A create that fails for a passing reason may have landed all the same (its answer was
/// lost to a reset connection or a timeout), so it is never repeated blind: the next round
/// looks first. Backends that honour client tokens need none of this; emulators and other
/// clouds do. Errors that do not pass end the work at once.
pub(crate) async fn find_or_create<T, Find, Found, Create, Created>(
    what: &str,
    cancellation: &Cancellation,
    mut find: Find,
    mut create: Create,
) -> Result<T, Error>
where
    Find: FnMut() -> Found,
    Found: Future<Output = Result<Option<T>, ProviderError>>,
    Create: FnMut() -> Created,
    Created: Future<Output = Result<T, ProviderError>>,
{
    let deadline = Instant::now() + TRY_TIMEOUT;
    let mut backoff = Backoff::new();
    loop {
        let attempt = match find().await {
            Ok(Some(made)) => return Ok(made),
            Ok(None) => {
                cancellation.check()?;
                create().await
            }
            Err(e) => Err(e),
        };
        match attempt {
            Ok(made) => return Ok(made),
            Err(e) if is_passing(&e) && Instant::now() < deadline => {
                tracing::warn!(what, error = %e, "a create's answer was lost or refused for now; looking for what it made before trying again");
                backoff.wait(cancellation).await?;
            }
            Err(e) => return Err(provider_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::context::RunFlags;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    fn not_cancelled() -> Cancellation {
        Cancellation(RunFlags::new(false, u64::MAX))
    }

    fn lost_answer() -> ProviderError {
        ProviderError::new(ProviderErrorKind::Timeout, "backend_timeout", "no answer")
    }

    #[tokio::test]
    async fn a_repeatable_call_goes_on_through_passing_errors_only() {
        let calls = AtomicU32::new(0);
        let answer = repeatable("stop", &not_cancelled(), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(lost_answer()),
                _ => Ok("stopped"),
            }
        })
        .await
        .unwrap();
        assert_eq!((answer, calls.load(Ordering::SeqCst)), ("stopped", 2));
        let error = repeatable::<(), _, _>("stop", &not_cancelled(), || async {
            Err(ProviderError::new(
                ProviderErrorKind::Conflict,
                "wrong_state",
                "no",
            ))
        })
        .await
        .unwrap_err();
        assert_eq!(error.code, "wrong_state");
    }

    #[tokio::test]
    async fn a_create_whose_answer_was_lost_is_found_not_repeated() {
        let landed = AtomicBool::new(false);
        let creates = AtomicU32::new(0);
        let made = find_or_create(
            "thing",
            &not_cancelled(),
            || async { Ok(landed.load(Ordering::SeqCst).then_some("thing-1")) },
            || async {
                creates.fetch_add(1, Ordering::SeqCst);
                // The backend acts, then the connection drops before the answer.
                landed.store(true, Ordering::SeqCst);
                Err(lost_answer())
            },
        )
        .await
        .unwrap();
        assert_eq!((made, creates.load(Ordering::SeqCst)), ("thing-1", 1));
    }

    #[tokio::test]
    async fn a_throttled_create_is_tried_again_and_a_refusal_is_not() {
        let creates = AtomicU32::new(0);
        let made = find_or_create(
            "thing",
            &not_cancelled(),
            || async { Ok(None) },
            || async {
                match creates.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(ProviderError::new(
                        ProviderErrorKind::Throttled,
                        "backend_throttled",
                        "slow down",
                    )),
                    _ => Ok("thing-1"),
                }
            },
        )
        .await
        .unwrap();
        assert_eq!((made, creates.load(Ordering::SeqCst)), ("thing-1", 3));

        let creates = AtomicU32::new(0);
        let error = find_or_create::<&str, _, _, _, _>(
            "thing",
            &not_cancelled(),
            || async { Ok(None) },
            || async {
                creates.fetch_add(1, Ordering::SeqCst);
                Err(ProviderError::new(
                    ProviderErrorKind::InvalidInput,
                    "image_not_found",
                    "no such image",
                ))
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            (error.code.as_str(), creates.load(Ordering::SeqCst)),
            ("image_not_found", 1)
        );
    }
}
