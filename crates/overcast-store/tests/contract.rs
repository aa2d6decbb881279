//! The store contract: the same tests on SQLite (a temp file) and PostgreSQL (a fresh
//! database in the cluster named by `OVERCAST_TEST_POSTGRES_URL`, which `scripts/test`
//! starts on loopback).

use overcast_store::{
    AuditFilter, Created, Hold, IdempotencyClaim, OperationFilter, PageRequest, Revoked,
    ServerRecord, Store, StoreError,
};
use overcast_types::{
    AuditEntry, ErrorKind, Operation, OperationError, OperationStatus, Progress, Role,
    TargetOutcome, TargetResult, TokenInfo,
};
use std::collections::HashSet;
use time::{Duration, OffsetDateTime};

async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    (Store::connect(&url).await.unwrap(), dir)
}

async fn postgres_store() -> Store {
    let admin_url = std::env::var("OVERCAST_TEST_POSTGRES_URL").expect(
        "OVERCAST_TEST_POSTGRES_URL is not set: run ./scripts/test, which starts a throwaway PostgreSQL",
    );
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
    let name = format!("overcast_test_{}", std::process::id()) + &unique_suffix();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    Store::connect(&format!("{base}/{name}")).await.unwrap()
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000;
    format!("_{}_{}", nanos, NEXT.fetch_add(1, Ordering::SeqCst))
}

fn t(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap() + Duration::milliseconds(ms)
}

fn token(id: &str, org: &str) -> TokenInfo {
    TokenInfo {
        id: id.into(),
        name: format!("name-{id}"),
        org: org.into(),
        role: Role::Operator,
        created_at: t(0),
        expires_at: Some(t(86_400_000)),
        revoked_at: None,
        created_by: "bootstrap".into(),
    }
}

fn operation(id: &str, org: &str, kind: &str, created: i64) -> Operation {
    let target = "aws-dev/instances".to_string();
    let input = serde_json::json!({"count": 2});
    Operation {
        environment: Some("aws-dev".into()),
        ..Operation::pending(id.into(), kind, org, target, "ci", t(created), input)
    }
}

fn claim(key: &str, hash: &str) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: "acme".into(),
        key: key.into(),
        request_hash: hash.into(),
    }
}

async fn tokens_are_found_by_hash_and_revoked_once(store: &Store) {
    store
        .insert_token(&token("tok_1", "acme"), "hash-1")
        .await
        .unwrap();
    store
        .insert_token(&token("tok_2", "other"), "hash-2")
        .await
        .unwrap();
    // A resumed create records the same token again: no error, no duplicate.
    store
        .insert_token(&token("tok_1", "acme"), "hash-1")
        .await
        .unwrap();
    assert_eq!(store.token_count().await.unwrap(), 2);

    let found = store.token_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!(found, token("tok_1", "acme"));
    assert!(store.token_by_hash("nope").await.unwrap().is_none());

    let acme: Vec<_> = store
        .tokens(Some("acme"))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(acme, ["tok_1"]);
    assert_eq!(store.tokens(None).await.unwrap().len(), 2);

    assert_eq!(
        store.revoke_token("tok_1", t(10)).await.unwrap(),
        Revoked::Revoked
    );
    assert_eq!(
        store.revoke_token("tok_1", t(20)).await.unwrap(),
        Revoked::Revoked
    );
    assert_eq!(
        store.token("tok_1").await.unwrap().unwrap().revoked_at,
        Some(t(10))
    );
    assert_eq!(
        store.revoke_token("tok_404", t(10)).await.unwrap(),
        Revoked::NotFound
    );
}

/// Two servers bootstrapping one store with the same admin secret: the second recording
/// of that secret, under another id, is a no-op, not a failure to start.
async fn one_secret_is_recorded_once_whoever_records_it(store: &Store) {
    store
        .insert_token(&token("tok_first", "admin"), "hash-admin")
        .await
        .unwrap();
    store
        .insert_token(&token("tok_second", "admin"), "hash-admin")
        .await
        .unwrap();
    assert_eq!(store.token_count().await.unwrap(), 1);
    let found = store.token_by_hash("hash-admin").await.unwrap().unwrap();
    assert_eq!(found.id, "tok_first");
}

async fn operations_move_through_their_statuses(store: &Store) {
    let op = operation("op_1", "acme", "token.create", 0);
    assert_eq!(
        store.create_operation(&op, None).await.unwrap(),
        Created::New(op.clone())
    );
    assert_eq!(store.operation("op_1").await.unwrap().unwrap(), op);

    assert!(store.mark_running("op_1", None, t(5)).await.unwrap());
    // Resuming a running operation keeps its first start time.
    assert!(store.mark_running("op_1", None, t(9)).await.unwrap());
    let results = vec![TargetResult {
        target: "i-1".into(),
        outcome: TargetOutcome::Done,
        message: None,
        detail: Some(serde_json::json!({"state": "running"})),
    }];
    store
        .save_progress("op_1", None, Progress { done: 1, total: 2 }, &results, 7)
        .await
        .unwrap();
    let error = OperationError {
        code: "instance_limit_exceeded".into(),
        message: "no".into(),
        field: Some("count".into()),
        kind: Some(ErrorKind::Conflict),
    };
    assert!(store
        .finish_operation("op_1", None, OperationStatus::Failed, Some(&error), t(20))
        .await
        .unwrap());
    // An ended operation stays as it ended.
    assert!(!store
        .finish_operation("op_1", None, OperationStatus::Succeeded, None, t(30))
        .await
        .unwrap());
    assert!(!store.mark_running("op_1", None, t(40)).await.unwrap());
    assert!(!store.request_cancel("op_1").await.unwrap());

    let got = store.operation("op_1").await.unwrap().unwrap();
    assert_eq!(got.status, OperationStatus::Failed);
    assert_eq!(got.started_at, Some(t(5)));
    assert_eq!(got.finished_at, Some(t(20)));
    assert_eq!(got.progress, Progress { done: 1, total: 2 });
    assert_eq!(got.backend_calls, 7);
    assert_eq!(got.results, results);
    assert_eq!(got.error, Some(error));
    assert_eq!(got.input, serde_json::json!({"count": 2}));
}

async fn unfinished_operations_are_claimed_once_and_former_holders_fenced(store: &Store) {
    for (id, status) in [("op_a", None), ("op_b", Some("run")), ("op_c", Some("end"))] {
        store
            .create_operation(&operation(id, "acme", "k", 0), None)
            .await
            .unwrap();
        if status.is_some() {
            store.mark_running(id, None, t(1)).await.unwrap();
        }
        if status == Some("end") {
            store
                .finish_operation(id, None, OperationStatus::Succeeded, None, t(2))
                .await
                .unwrap();
        }
    }
    store
        .create_held_operation(&operation("op_d", "acme", "k", 0), None, "srv_b", t(1000))
        .await
        .unwrap();
    assert!(store.request_cancel("op_a").await.unwrap());

    // The unfinished ones nobody holds are claimed, each once; the held one is left.
    let claimed = store
        .claim_operations("srv_a", t(10), t(510), 10, false, &[])
        .await
        .unwrap();
    let ids: Vec<_> = claimed.iter().map(|c| c.operation.id.as_str()).collect();
    assert_eq!(ids, ["op_a", "op_b"]);
    assert!(claimed[0].operation.cancel_requested && !claimed[1].operation.cancel_requested);
    assert!(claimed.iter().all(|c| c.hold
        == Hold {
            owner: "srv_a".into(),
            fence: 1
        }));
    assert!(claimed.iter().all(|c| c.previous_owner.is_none()));
    let again = store
        .claim_operations("srv_c", t(20), t(520), 10, false, &[])
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "held ones are not claimed while their leases last"
    );

    // Renewals answer what is still held, with the cancels asked for.
    let mine = ["op_a".to_string(), "op_b".to_string(), "op_d".to_string()];
    let renewed = store.renew_leases("srv_a", &mine, t(600)).await.unwrap();
    let mut held: Vec<_> = renewed
        .iter()
        .map(|r| (r.id.as_str(), r.cancel_requested))
        .collect();
    held.sort();
    assert_eq!(held, [("op_a", true), ("op_b", false)]);

    // Once srv_a's leases ran out, srv_c takes its operations over; srv_a's writes are
    // refused from then on, and its renewal finds nothing.
    let taken = store
        .claim_operations("srv_c", t(700), t(1200), 1, false, &[])
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].operation.id, "op_a");
    assert_eq!(taken[0].hold.fence, 2);
    assert_eq!(taken[0].previous_owner.as_deref(), Some("srv_a"));
    let former = Hold {
        owner: "srv_a".into(),
        fence: 1,
    };
    let refused = store
        .save_progress("op_a", Some(&former), Progress::default(), &[], 0)
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Fenced { .. }), "{refused}");
    assert!(!store
        .mark_running("op_a", Some(&former), t(701))
        .await
        .unwrap());
    assert!(!store
        .finish_operation(
            "op_a",
            Some(&former),
            OperationStatus::Succeeded,
            None,
            t(702)
        )
        .await
        .unwrap());
    let holder = &taken[0].hold;
    assert!(
        store
            .save_progress("op_a", Some(holder), Progress::default(), &[], 0)
            .await
            .unwrap()
            .cancel_requested
    );
    assert!(store
        .finish_operation(
            "op_a",
            Some(holder),
            OperationStatus::Cancelled,
            None,
            t(703)
        )
        .await
        .unwrap());
    let still: Vec<_> = store
        .renew_leases("srv_a", &mine, t(800))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(still, ["op_b"]);

    // A lone server at its start takes everything unfinished; a stopping one lets go.
    let every = store
        .claim_operations("srv_d", t(801), t(1300), 10, true, &[])
        .await
        .unwrap();
    let ids: Vec<_> = every.iter().map(|c| c.operation.id.as_str()).collect();
    assert_eq!(ids, ["op_b", "op_d"]);
    assert_eq!(store.release_operations("srv_d").await.unwrap(), 2);
    assert!(store.held_operations().await.unwrap().is_empty());
    let local = ["aws-dev".to_string()];
    let excluded = store
        .claim_operations("srv_e", t(802), t(1300), 10, false, &local)
        .await
        .unwrap();
    assert!(
        excluded.is_empty(),
        "another host's environment is left to it"
    );
    let claimed = store
        .claim_operations("srv_e", t(802), t(1300), 10, false, &["env-b".to_string()])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
}

async fn concurrent_claims_never_take_one_operation_twice(store: &Store) {
    for i in 0..200 {
        store
            .create_operation(&operation(&format!("op_{i:03}"), "acme", "k", 0), None)
            .await
            .unwrap();
    }
    let claimers = (0..3).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let owner = format!("srv_{n}");
            let mut mine = Vec::new();
            loop {
                let claimed = store
                    .claim_operations(&owner, t(10), t(10_000), 7, false, &[])
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|c| c.operation.id));
            }
        })
    });
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (200, 200));
    let held = store.held_operations().await.unwrap();
    assert_eq!(held.len(), 200);
}

async fn servers_register_beat_and_are_forgotten(store: &Store) {
    let server = |id: &str, at: i64| ServerRecord {
        id: id.into(),
        version: "0.1.0".into(),
        host: "h1".into(),
        pid: 42,
        started_at: t(at),
        heartbeat_at: t(at),
    };
    store.register_server(&server("srv_a", 0)).await.unwrap();
    store.register_server(&server("srv_b", 0)).await.unwrap();
    store.heartbeat("srv_b", t(5_000)).await.unwrap();
    let live = store.servers(t(1_000)).await.unwrap();
    assert_eq!(live.len(), 1, "srv_a's heartbeat is too old: {live:?}");
    assert_eq!(live[0].id, "srv_b");
    assert_eq!(live[0].heartbeat_at, t(5_000));
    store.remove_server("srv_b").await.unwrap();
    assert!(store.servers(t(0)).await.unwrap().is_empty());
}

async fn an_idempotency_key_replays_or_conflicts(store: &Store) {
    let first = operation("op_1", "acme", "token.create", 0);
    assert!(matches!(
        store
            .create_operation(&first, Some(&claim("k1", "h1")))
            .await
            .unwrap(),
        Created::New(_)
    ));
    let again = operation("op_2", "acme", "token.create", 1);
    assert_eq!(
        store
            .create_operation(&again, Some(&claim("k1", "h1")))
            .await
            .unwrap(),
        Created::Replayed(first.clone())
    );
    assert_eq!(
        store
            .create_operation(&again, Some(&claim("k1", "h2")))
            .await
            .unwrap(),
        Created::KeyReused {
            operation_id: "op_1".into()
        }
    );
    assert!(
        store.operation("op_2").await.unwrap().is_none(),
        "a replay records nothing"
    );
}

async fn concurrent_requests_with_one_key_create_one_operation(store: &Store) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let op = operation(&format!("op_{i}"), "acme", "k", i);
                store
                    .create_operation(&op, Some(&claim("same", "h")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut new = 0;
    for task in tasks {
        match task.await.unwrap() {
            Created::New(op) => {
                new += 1;
                ids.insert(op.id);
            }
            Created::Replayed(op) => {
                ids.insert(op.id);
            }
            Created::KeyReused { .. } => panic!("same body must replay"),
        }
    }
    assert_eq!(new, 1);
    assert_eq!(ids.len(), 1, "every request sees the one operation");
    let (all, _) = store
        .operations(
            &OperationFilter::default(),
            &PageRequest {
                limit: 50,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

async fn operations_are_paged_and_filtered(store: &Store) {
    for i in 0..7 {
        let org = if i % 2 == 0 { "acme" } else { "other" };
        let kind = if i < 4 {
            "token.create"
        } else {
            "token.revoke"
        };
        store
            .create_operation(&operation(&format!("op_{i}"), org, kind, i * 1000), None)
            .await
            .unwrap();
    }
    store.mark_running("op_3", None, t(1)).await.unwrap();

    let mut seen = vec![];
    let mut after = None;
    loop {
        let (items, next) = store
            .operations(
                &OperationFilter::default(),
                &PageRequest {
                    limit: 3,
                    after: after.clone(),
                },
            )
            .await
            .unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.into_iter().map(|o| o.id));
        match next {
            Some(token) => after = Some(token),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["op_6", "op_5", "op_4", "op_3", "op_2", "op_1", "op_0"]
    );

    let ids = |filter: OperationFilter| async move {
        let (items, _) = store
            .operations(
                &filter,
                &PageRequest {
                    limit: 100,
                    after: None,
                },
            )
            .await
            .unwrap();
        items.into_iter().map(|o| o.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(OperationFilter {
            org: Some("acme".into()),
            ..Default::default()
        })
        .await,
        ["op_6", "op_4", "op_2", "op_0"]
    );
    assert_eq!(
        ids(OperationFilter {
            status: Some(OperationStatus::Running),
            ..Default::default()
        })
        .await,
        ["op_3"]
    );
    assert_eq!(
        ids(OperationFilter {
            kind: Some("token.revoke".into()),
            ..Default::default()
        })
        .await,
        ["op_6", "op_5", "op_4"]
    );
    assert_eq!(
        ids(OperationFilter {
            since: Some(t(5000)),
            ..Default::default()
        })
        .await,
        ["op_6", "op_5"]
    );
}

async fn the_audit_log_is_appended_and_listed(store: &Store) {
    for i in 0..5 {
        store
            .append_audit(&AuditEntry {
                id: format!("au_{i}"),
                at: t(i * 10),
                token_id: format!("tok_{}", i % 2),
                token_name: "ci".into(),
                org: if i < 3 { "acme".into() } else { "other".into() },
                role: Role::Admin,
                method: "POST".into(),
                route: "/v1/tokens".into(),
                target: "/v1/tokens".into(),
                operation_id: (i == 4).then(|| "op_9".to_string()),
                outcome: "succeeded".into(),
                status_code: 201,
                request_id: format!("req-{i}"),
            })
            .await
            .unwrap();
    }
    let list = |filter: AuditFilter, limit: u32| async move {
        store
            .audit(&filter, &PageRequest { limit, after: None })
            .await
            .unwrap()
    };
    let (page, next) = list(AuditFilter::default(), 2).await;
    assert_eq!(
        page.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["au_4", "au_3"]
    );
    assert_eq!(next.as_deref(), Some("au_3"));
    assert_eq!(page[0].operation_id.as_deref(), Some("op_9"));
    assert_eq!(page[0].status_code, 201);
    let (acme, _) = list(
        AuditFilter {
            org: Some("acme".into()),
            ..Default::default()
        },
        50,
    )
    .await;
    assert_eq!(acme.len(), 3);
    let (tok1, _) = list(
        AuditFilter {
            token_id: Some("tok_1".into()),
            ..Default::default()
        },
        50,
    )
    .await;
    assert_eq!(tok1.len(), 2);
    let (by_op, _) = list(
        AuditFilter {
            operation_id: Some("op_9".into()),
            ..Default::default()
        },
        50,
    )
    .await;
    assert_eq!(by_op.len(), 1);
    let (recent, _) = list(
        AuditFilter {
            since: Some(t(30)),
            ..Default::default()
        },
        50,
    )
    .await;
    assert_eq!(recent.len(), 2);
}

async fn the_last_usable_admin_is_never_revoked_even_by_concurrent_revokes(store: &Store) {
    let admin = |id: &str, expires_at: Option<OffsetDateTime>| TokenInfo {
        role: Role::Admin,
        expires_at,
        ..token(id, "admin")
    };
    // An expired admin does not count as usable; other roles revoke freely.
    store
        .insert_token(&admin("tok_expired", Some(t(5))), "h-expired")
        .await
        .unwrap();
    store
        .insert_token(&token("tok_op", "acme"), "h-op")
        .await
        .unwrap();
    assert_eq!(
        store.revoke_token("tok_op", t(10)).await.unwrap(),
        Revoked::Revoked
    );
    let pair = |round: u32| (format!("tok_a{round}"), format!("tok_b{round}"));
    for id in <[String; 2]>::from(pair(0)) {
        store.insert_token(&admin(&id, None), &id).await.unwrap();
    }
    // Rounds of the two usable admins revoked at once: exactly one revoke wins each time.
    // (Without the store's lock, PostgreSQL let both win within some dozens of rounds.)
    for round in 0..200 {
        let (a, b) = pair(round);
        let (first, second) =
            tokio::join!(store.revoke_token(&a, t(10)), store.revoke_token(&b, t(10)));
        let mut outcomes = [first.unwrap(), second.unwrap()];
        outcomes.sort_by_key(|o| *o == Revoked::LastAdmin);
        assert_eq!(
            outcomes,
            [Revoked::Revoked, Revoked::LastAdmin],
            "round {round}"
        );
        // The next pair joins the one kept, which then goes, leaving two usable again.
        let a_kept = store.token(&a).await.unwrap().unwrap().revoked_at.is_none();
        let kept = if a_kept { a } else { b };
        for id in <[String; 2]>::from(pair(round + 1)) {
            store.insert_token(&admin(&id, None), &id).await.unwrap();
        }
        assert_eq!(
            store.revoke_token(&kept, t(10)).await.unwrap(),
            Revoked::Revoked
        );
    }
}

async fn console_sessions_lead_to_their_token_until_ended_or_expired(store: &Store) {
    store
        .insert_token(&token("tok_s", "acme"), "hash-token")
        .await
        .unwrap();
    store
        .insert_session("session-a", "tok_s", t(0), t(1_000))
        .await
        .unwrap();
    let (found, expires_at) = store.session_token("session-a").await.unwrap().unwrap();
    assert_eq!(found, token("tok_s", "acme"));
    assert_eq!(expires_at, t(1_000));
    assert!(store.session_token("hash-token").await.unwrap().is_none());

    // A later sign-in forgets the sessions that have expired by then, and only those.
    store
        .insert_session("session-b", "tok_s", t(500), t(5_000))
        .await
        .unwrap();
    store
        .insert_session("session-c", "tok_s", t(2_000), t(9_000))
        .await
        .unwrap();
    assert!(store.session_token("session-a").await.unwrap().is_none());
    assert!(store.session_token("session-b").await.unwrap().is_some());

    assert!(store.delete_session("session-b").await.unwrap());
    assert!(!store.delete_session("session-b").await.unwrap());
    assert!(store.session_token("session-b").await.unwrap().is_none());
    assert!(store.session_token("session-c").await.unwrap().is_some());
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _dir) = super::sqlite_store().await;
                    super::$name(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = super::postgres_store().await;
                    super::$name(&store).await;
                }
            )*
        }
    };
}

contract!(
    tokens_are_found_by_hash_and_revoked_once,
    one_secret_is_recorded_once_whoever_records_it,
    operations_move_through_their_statuses,
    unfinished_operations_are_claimed_once_and_former_holders_fenced,
    concurrent_claims_never_take_one_operation_twice,
    servers_register_beat_and_are_forgotten,
    an_idempotency_key_replays_or_conflicts,
    concurrent_requests_with_one_key_create_one_operation,
    operations_are_paged_and_filtered,
    the_audit_log_is_appended_and_listed,
    the_last_usable_admin_is_never_revoked_even_by_concurrent_revokes,
    console_sessions_lead_to_their_token_until_ended_or_expired,
);

#[tokio::test]
async fn reopening_a_store_keeps_its_data() {
    let (store, dir) = sqlite_store().await;
    store
        .insert_token(&token("tok_1", "acme"), "hash-1")
        .await
        .unwrap();
    store.close().await;
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let reopened = Store::connect(&url).await.unwrap();
    assert_eq!(reopened.token_count().await.unwrap(), 1);
}

#[tokio::test]
async fn an_unknown_database_url_is_refused() {
    let err = Store::connect("mysql://u:pw@h/db").await.err().unwrap();
    assert_eq!(
        err.to_string(),
        "unsupported database URL `mysql://u:***@h/db`: use sqlite://PATH or postgres://..."
    );
}
