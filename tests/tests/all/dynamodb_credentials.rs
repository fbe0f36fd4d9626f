//! `weir run` with a DynamoDB Streams -> DynamoDB pipeline whose config has
//! no static keys: credentials come from the AWS default chain, here the
//! environment or a shared credentials file (profile); with neither, the
//! start fails with an error saying so.
//!
//! Needs moto: `scripts/services start dynamodb` (or `WEIR_TEST_DYNAMODB`).

use weir_tests::dynamodb_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dynamodb_support::*;
use weir::dynamodb::aws_sdk_dynamodb::Client;
use weir::dynamodb::aws_sdk_dynamodb::types::{
    AttributeValue, ScalarAttributeType, StreamViewType,
};
use weir_tests::weir_bin;

/// Every variable the AWS default chain reads, so the test's own
/// environment (the services script exports static test keys) leaks in.
const AWS_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

/// A config without `access_key_id` / `secret_access_key` anywhere.
fn config(dir: &Path, src: &str, copy: &str) -> String {
    format!(
        r#"
[host]
cache_dir = {cache:?}

[host.admin]
listen = "127.0.0.1:0"

[sources.changes]
type = "dynamodb_streams"
table = "{src}"
endpoint = "{endpoint}"
region = "us-east-1"
lease_table = "{leases}"
lease_duration_ms = 2000
poll_min_ms = 20
poll_max_ms = 200

[sinks.copy]
type = "dynamodb"
table = "{copy}"
endpoint = "{endpoint}"
region = "us-east-1"

[pipelines.creds]
source = "changes"
default_route = "copy"
batch = {{ max_events = 100, max_wait_ms = 100 }}
"#,
        cache = dir.join("cache").display().to_string(),
        endpoint = endpoint(),
        leases = unique("leases"),
    )
}

async fn tables(prefix: &str) -> (Client, String, String) {
    let client = client().await;
    let src = unique(prefix);
    let copy = unique(&format!("{prefix}-copy"));
    create_table(
        &client,
        &src,
        &[("id", ScalarAttributeType::S)],
        Some(StreamViewType::NewAndOldImages),
    )
    .await;
    create_table(&client, &copy, &[("id", ScalarAttributeType::S)], None).await;
    for i in 0..5 {
        client
            .put_item()
            .table_name(&src)
            .item("id", AttributeValue::S(format!("item-{i}")))
            .item("n", AttributeValue::N(i.to_string()))
            .send()
            .await
            .unwrap();
    }
    (client, src, copy)
}

/// `weir run CONFIG` with only `env` from the AWS variables, no instance
/// metadata lookups, and a home without `~/.aws`.
fn spawn(dir: &Path, config_text: &str, env: &[(&str, String)]) -> Child {
    let config = dir.join("weir.toml");
    std::fs::write(&config, config_text).unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let log = std::fs::File::create(dir.join("weir.log")).unwrap();
    let mut cmd = Command::new(weir_bin());
    cmd.arg("run")
        .arg(&config)
        .env("WEIR_LOG", "info")
        .env("HOME", &home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(log);
    for var in AWS_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("cannot start weir")
}

/// Wait until the copy holds the five items; kill weir either way.
async fn expect_copy(client: &Client, copy: &str, mut weir: Child, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let copied = loop {
        let n = scan_all(client, copy, &["id"]).await.len();
        if n == 5 {
            break true;
        }
        if Instant::now() > deadline || weir.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = weir.kill();
    let _ = weir.wait();
    assert!(
        copied,
        "the copy did not fill; weir's log:\n{}",
        std::fs::read_to_string(dir.join("weir.log")).unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_the_environment() {
    let (client, src, copy) = tables("creds-env").await;
    let dir = tempfile::tempdir().unwrap();
    let weir = spawn(
        dir.path(),
        &config(dir.path(), &src, &copy),
        &[
            ("AWS_ACCESS_KEY_ID", "env-key".into()),
            ("AWS_SECRET_ACCESS_KEY", "env-secret".into()),
        ],
    );
    expect_copy(&client, &copy, weir, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_a_shared_credentials_file_profile() {
    let (client, src, copy) = tables("creds-profile").await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        "[default]\naws_access_key_id = wrong\n\n[weir-test]\naws_access_key_id = profile-key\naws_secret_access_key = profile-secret\n",
    )
    .unwrap();
    let weir = spawn(
        dir.path(),
        &config(dir.path(), &src, &copy),
        &[
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials.display().to_string(),
            ),
            ("AWS_PROFILE", "weir-test".into()),
        ],
    );
    expect_copy(&client, &copy, weir, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_anywhere_fails_the_start_saying_so() {
    let (_client, src, copy) = tables("creds-none").await;
    let dir = tempfile::tempdir().unwrap();
    let mut weir = spawn(dir.path(), &config(dir.path(), &src, &copy), &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = weir.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = weir.kill();
            let _ = weir.wait();
            panic!(
                "weir kept running without credentials; its log:\n{}",
                std::fs::read_to_string(dir.path().join("weir.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(dir.path().join("weir.log")).unwrap();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("no AWS credentials: set access_key_id and secret_access_key"),
        "{log}"
    );
}
