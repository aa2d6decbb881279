//! Secrets Manager secrets and SSM parameters against moto, checked in moto with the SDK:
//! versions, values by their own audited route, recovery window and restore, org isolation,
//! parameters by path over pages, prefix delete in batches, history.

use overcast_test_utils::metrics::backend_calls;
use overcast_test_utils::moto::{new_account, REGIONS};
use overcast_test_utils::process::{cli, serve_with, write_aws_config};
use overcast_test_utils::{TestServer, ADMIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const SECRETS: &str = "/v1/environments/aws-test/secrets";
const PARAMETERS: &str = "/v1/environments/aws-test/parameters";
const VALUES: &str = "/v1/environments/aws-test/parameter-values";

/// The audit entries of a route, as the admin reads them.
async fn audited(server: &TestServer, route: &str) -> Vec<Value> {
    let (_, page) = server
        .call(Method::GET, "/v1/audit?limit=200", Some(ADMIN), None)
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["route"] == route)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_keep_versions_read_values_by_their_own_audited_route_and_come_back_from_deletion()
{
    let server = TestServer::aws().await;
    let direct = server.secretsmanager(REGIONS[0]).await;
    let operator = server.token("acme", "operator").await;
    let viewer = server.token("acme", "viewer").await;

    let body = json!({"name": "db/password", "value": "hunter2-first", "description": "the db", "tags": {"team": "data"}});
    let (status, op) = server
        .call(Method::POST, SECRETS, Some(&operator), Some(body))
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::CREATED, Some("succeeded")),
        "{op}"
    );
    assert!(
        !op.to_string().contains("hunter2"),
        "the record holds no value: {op}"
    );
    let described = direct
        .describe_secret()
        .secret_id("db/password")
        .send()
        .await
        .unwrap();
    let tags: std::collections::BTreeMap<_, _> = described
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!((tags["overcast:org"], tags["team"]), ("acme", "data"));
    assert_eq!(tags["overcast:operation"], op["id"].as_str().unwrap());

    // A name taken is a 409 naming the field.
    let (status, err) = server
        .call(
            Method::POST,
            SECRETS,
            Some(&operator),
            Some(json!({"name": "db/password", "value": "x"})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::CONFLICT, Some("name")),
        "{err}"
    );

    // A new value is a new current version; the first becomes the previous one.
    let url = format!("{SECRETS}/db%2Fpassword");
    server
        .change(
            Method::PATCH,
            &url,
            Some(json!({"value": "hunter2-second"})),
        )
        .await;
    let truth = direct
        .get_secret_value()
        .secret_id("db/password")
        .send()
        .await
        .unwrap();
    assert_eq!(truth.secret_string(), Some("hunter2-second"));
    let (status, secret) = server.call(Method::GET, &url, Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK, "{secret}");
    assert_eq!(secret["versions"].as_object().unwrap().len(), 2, "{secret}");
    assert!(!secret.to_string().contains("hunter2"), "{secret}");

    // The value: operators only, every read audited (never with the value).
    let value_url = format!("{url}/value");
    let (status, _) = server
        .call(Method::GET, &value_url, Some(&viewer), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, value) = server
        .call(Method::GET, &value_url, Some(&operator), None)
        .await;
    assert_eq!(
        (status, value["value"].as_str()),
        (StatusCode::OK, Some("hunter2-second")),
        "{value}"
    );
    let (_, previous) = server
        .call(
            Method::GET,
            &format!("{value_url}?stage=AWSPREVIOUS"),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(previous["value"], "hunter2-first", "{previous}");
    let reads = audited(&server, "/v1/environments/{env}/secrets/{name}/value").await;
    let outcomes: Vec<&str> = reads
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "succeeded").count(),
        2,
        "{reads:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "denied").count(),
        1,
        "{reads:?}"
    );

    // Another org sees nothing: 404 on every route, nothing in its listing.
    let other = server.token("other", "operator").await;
    for (method, path, body) in [
        (Method::GET, url.clone(), None),
        (Method::GET, value_url.clone(), None),
        (
            Method::PATCH,
            url.clone(),
            Some(json!({"value": "taken-over"})),
        ),
        (Method::POST, format!("{url}/restore"), None),
        (Method::DELETE, url.clone(), None),
    ] {
        let (status, answer) = server.call(method, &path, Some(&other), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
    let (_, listed) = server.call(Method::GET, SECRETS, Some(&other), None).await;
    assert_eq!(listed["items"], json!([]));
    let (_, listed) = server
        .call(
            Method::GET,
            &format!("{SECRETS}?tag.team=data"),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(listed["items"][0]["name"], "db/password", "{listed}");

    // A window outside 0 or 7–30 is a 400 naming it; a delete with a window can be undone.
    let (status, err) = server
        .call(
            Method::DELETE,
            &format!("{url}?window=3"),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("window"))
    );
    server
        .change(Method::DELETE, &format!("{url}?window=7"), None)
        .await;
    let described = direct
        .describe_secret()
        .secret_id("db/password")
        .send()
        .await
        .unwrap();
    assert!(described.deleted_date().is_some());
    let (status, err) = server
        .call(Method::GET, &value_url, Some(&operator), None)
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("secret_deleted")),
        "{err}"
    );
    server
        .change(Method::POST, &format!("{url}/restore"), None)
        .await;
    let described = direct
        .describe_secret()
        .secret_id("db/password")
        .send()
        .await
        .unwrap();
    assert!(described.deleted_date().is_none());

    // At once, for good.
    server
        .change(Method::DELETE, &format!("{url}?window=0"), None)
        .await;
    let gone = direct
        .describe_secret()
        .secret_id("db/password")
        .send()
        .await;
    assert!(gone.is_err(), "deleted in moto");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_live_under_their_org_and_list_delete_and_keep_history_by_path() {
    let server = TestServer::aws().await;
    let direct = server.ssm(REGIONS[0]).await;
    let acme = server.token("acme", "operator").await;
    let acme_viewer = server.token("acme", "viewer").await;
    let other = server.token("other", "operator").await;
    let put = |token: &str, name: &str, body: Value| {
        let token = token.to_string();
        let path = format!("{PARAMETERS}{name}?timeout=60");
        let server = &server;
        async move {
            server
                .call(Method::PUT, &path, Some(&token), Some(body))
                .await
        }
    };

    // 60 parameters under /app (more than one page), one SecureString.
    for i in 0..60 {
        let (status, op) = put(
            &acme,
            &format!("/app/cfg/p{i:02}"),
            json!({"value": format!("v{i}")}),
        )
        .await;
        assert_eq!(
            (status, op["status"].as_str()),
            (StatusCode::CREATED, Some("succeeded")),
            "{op}"
        );
    }
    let (status, op) = put(
        &acme,
        "/app/db/password",
        json!({"value": "s3cret-param", "type": "SecureString"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{op}");
    assert!(!op.to_string().contains("s3cret-param"));
    let truth = direct
        .get_parameter()
        .name("/acme/app/db/password")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(truth.parameter().unwrap().value(), Some("s3cret-param"));

    // An existing name without overwrite is a 409; with it, a new version and history.
    let (status, _) = put(&acme, "/app/cfg/p00", json!({"value": "again"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = put(
        &acme,
        "/app/cfg/p00",
        json!({"value": "again", "overwrite": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, history) = server
        .call(
            Method::GET,
            "/v1/environments/aws-test/parameter-history/app/cfg/p00",
            Some(&acme_viewer),
            None,
        )
        .await;
    let versions: Vec<i64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2], "{history}");

    // Paged listing: every one, once, names without the org's root.
    let metrics_before =
        backend_calls(&server.metrics().await, &[("action", "DescribeParameters")]);
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let url = match &token {
            Some(t) => format!("{PARAMETERS}?path=/app/cfg&page_token={t}"),
            None => format!("{PARAMETERS}?path=/app/cfg"),
        };
        let (status, page) = server
            .call(Method::GET, &url, Some(&acme_viewer), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string()),
        );
        token = page["next_page_token"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names.len(), 60);
    assert!(
        names.iter().all(|n| n.starts_with("/app/cfg/p")),
        "{names:?}"
    );
    let calls = backend_calls(&server.metrics().await, &[("action", "DescribeParameters")])
        - metrics_before;
    // The floor is one call per page of the backend's largest page (SSM: 50; moto pages
    // by 10 whatever MaxResults says): the direct SDK loop over the same path.
    let mut direct_pages = 0;
    let mut pages = direct
        .describe_parameters()
        .parameter_filters(
            aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Path")
                .option("Recursive")
                .values("/acme/app/cfg")
                .build()
                .unwrap(),
        )
        .max_results(50)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        page.unwrap();
        direct_pages += 1;
    }
    assert_eq!(calls, direct_pages, "listing at the backend's call floor");
    let (_, one_level) = server
        .call(
            Method::GET,
            &format!("{PARAMETERS}?path=/app&recursive=false"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(one_level["items"], json!([]), "nothing directly under /app");

    // A SecureString's value: not in its description, only from the value route.
    let (_, described) = server
        .call(
            Method::GET,
            &format!("{PARAMETERS}/app/db/password"),
            Some(&acme_viewer),
            None,
        )
        .await;
    assert!(described.get("value").is_none(), "{described}");
    assert_eq!(described["tags"]["overcast:org"], "acme");
    let (status, _) = server
        .call(
            Method::GET,
            &format!("{VALUES}/app/db/password"),
            Some(&acme_viewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, value) = server
        .call(
            Method::GET,
            &format!("{VALUES}/app/db/password"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(value["value"], "s3cret-param");
    let reads = audited(&server, "/v1/environments/{env}/parameter-values/{*name}").await;
    assert_eq!(reads.len(), 2, "{reads:?}");

    // Another org: its own root, so acme's names do not exist for it.
    let (status, _) = server
        .call(
            Method::GET,
            &format!("{PARAMETERS}/app/db/password"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = server
        .call(Method::GET, PARAMETERS, Some(&other), None)
        .await;
    assert_eq!(listed["items"], json!([]));

    // Prefix delete of 25 in SSM's batches of 10: one operation with progress.
    for i in 0..25 {
        put(&acme, &format!("/tmp/x{i:02}"), json!({"value": "t"})).await;
    }
    let before = backend_calls(&server.metrics().await, &[("action", "DeleteParameters")]);
    let (status, op) = server
        .call(
            Method::DELETE,
            &format!("{PARAMETERS}?path=/tmp&timeout=60"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(
        (status, op["status"].as_str()),
        (StatusCode::OK, Some("succeeded")),
        "{op}"
    );
    assert_eq!(op["progress"], json!({"done": 25, "total": 25}), "{op}");
    let after = backend_calls(&server.metrics().await, &[("action", "DeleteParameters")]);
    assert_eq!(after - before, 3, "25 names in batches of 10");
    let left = direct
        .get_parameters_by_path()
        .path("/acme/tmp")
        .recursive(true)
        .send()
        .await
        .unwrap();
    assert!(left.parameters().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_takes_values_from_files_and_prints_them_only_when_asked() {
    let server = TestServer::aws().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("value");
    std::fs::write(&file, "cli-s3cret-value").unwrap();
    let file = file.to_str().unwrap();
    let base = server.base.clone();
    let cli = move |args: Vec<String>| {
        let base = base.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                cli(crate::BIN, &base, &args)
            })
            .await
            .unwrap()
        }
    };
    let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();

    let mut create = args("secret create -e aws-test app-key -w --value-file");
    create.push(file.to_string());
    let (code, out, err) = cli(create).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !out.contains("cli-s3cret-value") && !err.contains("cli-s3cret-value"),
        "{out}{err}"
    );
    let (code, out, _) = cli(args("secret get -e aws-test app-key")).await;
    assert_eq!(code, 0);
    assert!(!out.contains("cli-s3cret-value"), "{out}");
    let (code, out, err) = cli(args("secret value -e aws-test app-key")).await;
    assert_eq!((code, out.trim()), (0, "cli-s3cret-value"), "{err}");
    // Without a value, a create says how to give one.
    let (code, _, err) = cli(args("secret create -e aws-test other")).await;
    assert_ne!(code, 0);
    assert!(err.contains("--value-file"), "{err}");

    let mut put = args("param put -e aws-test /svc/token -w --type SecureString --value-file");
    put.push(file.to_string());
    let (code, out, err) = cli(put).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = cli(args("param get -e aws-test /svc/token")).await;
    assert_eq!(code, 0);
    assert!(!out.contains("cli-s3cret-value"), "{out}");
    let (code, out, _) = cli(args("param get -e aws-test /svc/token --decrypt")).await;
    assert_eq!((code, out.trim()), (0, "cli-s3cret-value"));
    let (code, out, _) = cli(args("param ls -e aws-test /svc")).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("/svc/token") && out.contains("SecureString"),
        "{out}"
    );
    let (code, out, _) = cli(args("param history -e aws-test /svc/token")).await;
    assert_eq!(code, 0);
    assert!(out.lines().count() >= 2, "a header and one version: {out}");
    let (code, out, err) = cli(args("param rm -e aws-test -r /svc -w")).await;
    assert_eq!(code, 0, "{out}{err}");
    let truth = server
        .ssm(REGIONS[0])
        .await
        .get_parameters_by_path()
        .path("/admin/svc")
        .recursive(true)
        .send()
        .await
        .unwrap();
    assert!(truth.parameters().is_empty());
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path, bytes));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_rests_in_the_store_the_server_log_or_the_audit_log() {
    let values = [
        "scan-first-secret-value",
        "scan-second-secret-value",
        "scan-secure-parameter-value",
        "scan-secure-parameter-again",
    ];
    let (postgres_url, pg_bin) = overcast_test_utils::postgres::fresh_database("scan");
    for database in [None, Some(postgres_url.as_str())] {
        let dir = tempfile::tempdir().unwrap();
        let account = new_account();
        let config = write_aws_config(dir.path(), &account);
        let mut set = vec![("OVERCAST_LOG", "debug")];
        if let Some(url) = database {
            set.push(("OVERCAST_DATABASE_URL", url));
        }
        let served = serve_with(crate::BIN, &config, &set, &[]);
        let change = |method: Method, path: String, body: Option<Value>| {
            let served = &served;
            async move {
                let (status, op) = served
                    .call(method, &format!("{path}?timeout=60"), Some(ADMIN), body)
                    .await;
                assert!(status.is_success(), "{path}: {status} {op}");
                assert_eq!(op["status"], "succeeded", "{op}");
            }
        };
        change(
            Method::POST,
            SECRETS.into(),
            Some(json!({"name": "scan", "value": values[0]})),
        )
        .await;
        change(
            Method::PATCH,
            format!("{SECRETS}/scan"),
            Some(json!({"value": values[1]})),
        )
        .await;
        let body = json!({"value": values[2], "type": "SecureString"});
        change(Method::PUT, format!("{PARAMETERS}/scan/p"), Some(body)).await;
        let body = json!({"value": values[3], "type": "SecureString", "overwrite": true});
        change(Method::PUT, format!("{PARAMETERS}/scan/p"), Some(body)).await;
        let (_, read) = served
            .call(
                Method::GET,
                &format!("{SECRETS}/scan/value"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_eq!(read["value"], values[1], "the values did reach the backend");
        let (_, read) = served
            .call(Method::GET, &format!("{VALUES}/scan/p"), Some(ADMIN), None)
            .await;
        assert_eq!(read["value"], values[3]);

        let (_, audit) = served
            .call(Method::GET, "/v1/audit?limit=500", Some(ADMIN), None)
            .await;
        let (_, operations) = served
            .call(Method::GET, "/v1/operations?limit=500", Some(ADMIN), None)
            .await;
        let log = served.log();
        assert!(log.contains("DEBUG"), "the server logged at debug level");
        drop(served);
        let mut places = vec![
            ("the audit log".to_string(), audit.to_string().into_bytes()),
            (
                "the operations".to_string(),
                operations.to_string().into_bytes(),
            ),
            ("the server log".to_string(), log.into_bytes()),
        ];
        match database {
            None => places.extend(
                files_under(&dir.path().join("data"))
                    .into_iter()
                    .map(|(path, bytes)| (path.display().to_string(), bytes)),
            ),
            Some(url) => {
                let dump = std::process::Command::new(pg_bin.join("pg_dump"))
                    .arg(url)
                    .output()
                    .unwrap();
                assert!(dump.status.success());
                assert!(dump.stdout.len() > 1000, "a dump of the store");
                places.push(("pg_dump".into(), dump.stdout));
            }
        }
        for (place, bytes) in &places {
            for value in values {
                let found = bytes.windows(value.len()).any(|w| w == value.as_bytes());
                assert!(!found, "{value} is in {place}");
            }
        }
    }
}
