//! The test harness of overcast: how tests and benchmarks run overcast and read what it did, written once.
//!
//! - [`TestServer`]: the server inside the test process, on a free loopback port with a
//!   temporary data dir; without providers, or (feature `aws`) with this build's providers
//!   and an `aws-test` environment in a fresh moto account.
//! - [`process`]: `overcast serve` as a process of its own ([`process::Served`], killed with
//!   SIGKILL when dropped), its config files, and the CLI run against it. The binary is a
//!   parameter: only the `overcast` crate's tests and benches know its path
//!   (`CARGO_BIN_EXE_overcast`).
//! - [`Api`]: calls to either kind of server (both dereference to it), the one operation
//!   poller ([`Api::operation_end`]) and tokens.
//! - [`metrics`]: backend calls counted in `/metrics`.
//! - [`faults`]: a proxy that throttles, resets and delays requests to moto, from a seed.
//! - [`moto`]: the moto server of the test process and its accounts; with `aws`, SDK clients
//!   into it and what it holds for an instance.
//! - [`registry`]: a real container image registry (Debian's `docker-registry`), open or
//!   behind basic or token authentication, pushes into it, and its token service.
//! - [`qemu`] (feature `qemu`): the test image, VM processes and QMP, and a reaper for VMs.
//! - [`browser`]: headless Chromium over WebDriver, for the console's tests.
//! - [`eventually`]: polling until something holds.
//!
//! # Features and dependency cycles
//!
//! Without features this crate needs `overcast-core` and `overcast-server` only. `aws` adds the
//! AWS SDK and the `overcast` crate (for `overcast::providers()`), `qemu` adds
//! `overcast-qemu`. `overcast-server`'s tests take it without features, so
//! `cargo test -p overcast-server` builds no SDK, and they use only the provider-free
//! [`TestServer::start`]; the `overcast` crate's tests and benches take both features.
//!
//! This crate depends on crates whose tests depend on it. Cargo allows such a cycle through
//! dev-dependencies, and an integration test (`tests/`) or bench links the same build of its
//! crate as this crate does, so there is one copy of each type. A crate's unit tests
//! (`#[cfg(test)]` in `src`) are a second build of it and would see two copies, so they never
//! use this crate. In a workspace build cargo unifies features: this crate is then built
//! once, with both, and each test binary links only what it calls.

pub mod api;
pub mod browser;
pub mod fakepve;
pub mod faults;
pub mod metrics;
pub mod moto;
pub mod postgres;
pub mod process;
#[cfg(feature = "qemu")]
pub mod qemu;
pub mod registry;
pub mod server;

pub use api::Api;
pub use server::TestServer;

use std::future::Future;
use std::time::{Duration, Instant};

/// The bootstrap admin token's secret of every server the harness starts.
pub const ADMIN: &str = "oc_test_admin_secret_0123456789";

/// Polls `check` every 100 ms until it holds; panics naming `what` after 10 s.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_within(
        what,
        Duration::from_millis(100),
        Duration::from_secs(10),
        check,
    )
    .await
}

/// Polls `check` every `every` until it holds; panics naming `what` after `within`.
pub async fn eventually_within<F, Fut>(what: &str, every: Duration, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("{what} did not happen within {within:?}");
        }
        tokio::time::sleep(every).await;
    }
}

/// The `n`th MiB of a repeatable stream of pseudo-random bytes (xorshift): bodies that cost
/// little to make and that no layer can compress or mistake for a repeat.
pub fn noise_mib(n: u64) -> bytes::Bytes {
    const MIB: usize = 1 << 20;
    let mut state = (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut chunk = Vec::with_capacity(MIB);
    while chunk.len() < MIB {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.extend_from_slice(&state.to_le_bytes());
    }
    bytes::Bytes::from(chunk)
}
