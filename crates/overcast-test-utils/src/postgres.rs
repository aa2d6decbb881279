//! The test PostgreSQL cluster `scripts/test` starts: a fresh database in it per test.

use std::path::PathBuf;

/// A fresh, empty database named after `purpose` in the test PostgreSQL cluster, and where
/// PostgreSQL's tools are.
pub fn fresh_database(purpose: &str) -> (String, PathBuf) {
    let admin_url = std::env::var("OVERCAST_TEST_POSTGRES_URL").expect(
        "OVERCAST_TEST_POSTGRES_URL is not set: run ./scripts/test, which starts a throwaway PostgreSQL",
    );
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's tools, as ./scripts/test installs them")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .max()
        .unwrap();
    let name = format!(
        "overcast_{purpose}_{}_{}",
        std::process::id(),
        rand::random::<u32>()
    );
    let status = std::process::Command::new(bin.join("psql"))
        .args([&admin_url, "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .unwrap();
    assert!(status.success());
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    (format!("{base}/{name}"), bin)
}
