//! `sigv4` on a remote_write entry (Amazon Managed Prometheus): relay's
//! signature equals botocore's for the same request, credentials and time;
//! a receiver that verifies with botocore accepts relay and refuses a wrong
//! secret (403, not retried, counted failed); EKS IRSA through a loopback
//! STS stand-in, with the temporary credentials cached and renewed; and the
//! SDKs' order of environment and shared-file credentials. All loopback.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use common::aws::{Botocore, StsStandIn};
use common::rw::{metric_value, Answer, Receiver, Request};
use common::{wait_for, Relay, Reply, Target};

const KEY: &str = "AKIDRELAYTEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYTESTKEY";
const REGION: &str = "eu-west-1";

/// A config scraping `target` every 500ms into `url`, the entry's `sigv4`
/// block being `sigv4` (flow-style YAML).
fn config(target: &str, url: &str, sigv4: &str) -> String {
    format!(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{target}\"]}}]\nremote_write:\n  - url: {url}\n    name: amp\n    headers: {{X-Scope-OrgID: tenant-a}}\n    queue_config: {{min_backoff: 50ms, max_backoff: 200ms, batch_send_deadline: 200ms, max_shards: 1}}\n    sigv4: {sigv4}\n"
    )
}

/// An environment without the developer's own AWS settings: HOME in a
/// fresh directory (no ~/.aws), plus `more`.
fn clean_env<'a>(home: &'a str, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("HOME", home),
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_PROFILE", ""),
        ("AWS_REGION", ""),
        ("AWS_DEFAULT_REGION", ""),
        ("AWS_CONFIG_FILE", ""),
        ("AWS_SHARED_CREDENTIALS_FILE", ""),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", ""),
        ("AWS_ROLE_ARN", ""),
        ("AWS_ENDPOINT_URL", ""),
        ("AWS_ENDPOINT_URL_STS", ""),
    ];
    env.extend_from_slice(more);
    env
}

fn target() -> Target {
    Target::start(Reply::text(
        "# TYPE app_requests_total counter\napp_requests_total 7\n",
    ))
}

/// The `n` first requests with a body (waits for them).
fn first_requests(receiver: &Receiver, n: usize) -> Vec<Request> {
    wait_for(&format!("{n} signed requests"), || {
        let got: Vec<Request> = receiver
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect();
        (got.len() >= n).then_some(got)
    })
}

/// The access key id of an `Authorization: AWS4-HMAC-SHA256 Credential=…`.
fn credential_of(request: &Request) -> String {
    let auth = request.header("authorization").unwrap_or_default();
    auth.split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or_default()
        .to_owned()
}

#[test]
#[ignore = "needs python (botocore in the venv)"]
fn the_authorization_header_equals_what_botocore_computes() {
    let target = target();
    let receiver = Receiver::start();
    let home = tempfile::tempdir().expect("home");
    let sigv4 = format!("{{region: {REGION}, access_key: {KEY}, secret_key: \"{SECRET}\"}}");
    let relay = Relay::start_env(
        &config(&target.addr, &receiver.url, &sigv4),
        &clean_env(home.path().to_str().expect("utf-8"), &[]),
    );
    let mut botocore = Botocore::start();
    let requests = first_requests(&receiver, 3);
    let mut dates = BTreeSet::new();
    for r in &requests {
        let sent = r.header("authorization").expect("an Authorization header");
        let expected = botocore.authorization(r, KEY, SECRET, None, REGION, "aps");
        assert_eq!(sent, expected, "request headers: {:?}", r.headers);
        assert!(
            sent.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY}/")),
            "{sent}"
        );
        assert!(
            sent.contains(&format!("/{REGION}/aps/aws4_request")),
            "{sent}"
        );
        // Every header relay set itself is signed, the entry's own too.
        assert!(
            sent.contains("SignedHeaders=content-encoding;content-type;host;x-amz-content-sha256;x-amz-date;x-prometheus-remote-write-version;x-scope-orgid,"),
            "{sent}"
        );
        assert_eq!(r.header("x-amz-security-token"), None);
        assert!(r.accepted(), "{r:?}");
        dates.insert(r.header("x-amz-date").expect("X-Amz-Date").to_owned());
    }
    assert!(
        !requests[0].samples().is_empty(),
        "no samples in {:?}",
        requests[0]
    );
    // The config shows the secret as Prometheus does.
    let shown = common::get(&relay.addr, "/api/v1/status/config", &[])
        .expect("status/config")
        .text();
    assert!(shown.contains("<secret>"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!relay.logs().contains(SECRET));
    assert!(!relay.metrics().contains(SECRET));
}

#[test]
#[ignore = "needs python (botocore in the venv)"]
fn a_verifying_receiver_accepts_relay_and_refuses_a_wrong_secret_without_retrying() {
    let home = tempfile::tempdir().expect("home");
    let home = home.path().to_str().expect("utf-8").to_owned();
    let verifying = || {
        let receiver = Receiver::start();
        let botocore = Mutex::new(Botocore::start());
        receiver.check(move |r| {
            let sent = r.header("authorization").unwrap_or_default();
            let expected = botocore
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .authorization(r, KEY, SECRET, None, REGION, "aps");
            (sent != expected).then(|| {
                Answer::text(403, "The request signature we calculated does not match the signature you provided.")
            })
        });
        receiver
    };
    // The right secret: every request verified and accepted.
    let target = target();
    let good = verifying();
    let sigv4 = format!("{{region: {REGION}, access_key: {KEY}, secret_key: \"{SECRET}\"}}");
    let relay = Relay::start_env(
        &config(&target.addr, &good.url, &sigv4),
        &clean_env(&home, &[]),
    );
    let requests = first_requests(&good, 3);
    for r in &requests {
        assert_eq!(r.status, 204, "refused: {:?}", r.headers);
    }
    assert!(!good.accepted().is_empty());
    drop(relay);

    // A wrong secret: refused with 403, logged, counted failed, not retried.
    let bad = verifying();
    let wrong = "not-the-secret-0123456789";
    let sigv4 = format!("{{region: {REGION}, access_key: {KEY}, secret_key: \"{wrong}\"}}");
    let relay = Relay::start_env(
        &config(&target.addr, &bad.url, &sigv4),
        &clean_env(&home, &[]),
    );
    let requests = first_requests(&bad, 2);
    assert!(requests.iter().all(|r| r.status == 403), "{requests:?}");
    relay.wait_for_log(&["403", "signature"]);
    let failed = wait_for("samples_failed_total > 0", || {
        metric_value(
            &relay.metrics(),
            "prometheus_remote_storage_samples_failed_total",
            &[],
        )
        .filter(|v| *v > 0.0)
    });
    assert!(failed > 0.0);
    let text = relay.metrics();
    assert_eq!(
        metric_value(
            &text,
            "prometheus_remote_storage_samples_retried_total",
            &[]
        ),
        Some(0.0),
        "a 403 must not be retried:\n{text}"
    );
    // Each refused request carried other samples (none sent twice).
    let bodies: BTreeSet<&[u8]> = requests.iter().map(|r| r.body.as_slice()).collect();
    assert_eq!(bodies.len(), requests.len(), "a refused batch was resent");
    let logs = relay.logs();
    assert!(!logs.contains(wrong), "the secret is in the logs:\n{logs}");
}

#[test]
#[ignore = "needs python (botocore in the venv)"]
fn irsa_credentials_come_from_sts_are_used_cached_and_renewed() {
    // Credentials that must be renewed 3s after they are handed out (relay
    // renews 5 minutes before expiry).
    let sts = StsStandIn::start(Duration::from_secs(5 * 60 + 3));
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.test-service-account-token\n",
    )
    .expect("token file");
    let target = target();
    let receiver = Receiver::start();
    let home = dir.path().to_str().expect("utf-8");
    let role = "arn:aws:iam::111122223333:role/relay-amp-writer";
    let relay = Relay::start_env(
        &config(&target.addr, &receiver.url, "{}"),
        &clean_env(
            home,
            &[
                ("AWS_REGION", "us-west-2"),
                (
                    "AWS_WEB_IDENTITY_TOKEN_FILE",
                    token_file.to_str().expect("utf-8"),
                ),
                ("AWS_ROLE_ARN", role),
                ("AWS_ROLE_SESSION_NAME", "relay-test"),
                ("AWS_ENDPOINT_URL_STS", &sts.url),
            ],
        ),
    );
    // Requests signed with at least two successive credentials.
    let requests = wait_for("requests signed with two STS credentials", || {
        let got: Vec<Request> = receiver.requests();
        let keys: BTreeSet<String> = got.iter().map(credential_of).collect();
        (keys.len() >= 2 && got.len() >= 6).then_some(got)
    });
    let calls = sts.calls();
    let first = calls.first().expect("an STS call");
    assert_eq!(first.field("Action"), Some("AssumeRoleWithWebIdentity"));
    assert_eq!(first.field("Version"), Some("2011-06-15"));
    assert_eq!(first.field("RoleArn"), Some(role));
    assert_eq!(first.field("RoleSessionName"), Some("relay-test"));
    assert_eq!(
        first.field("WebIdentityToken"),
        Some("eyJhbGciOiJSUzI1NiJ9.test-service-account-token")
    );
    let issued: BTreeMap<String, (String, String)> = calls
        .iter()
        .map(|c| (c.access_key.clone(), (c.secret.clone(), c.token.clone())))
        .collect();
    let mut botocore = Botocore::start();
    let mut uses: BTreeMap<String, usize> = BTreeMap::new();
    for r in &requests {
        let key = credential_of(r);
        let (secret, token) = issued
            .get(&key)
            .unwrap_or_else(|| panic!("signed with {key:?}, which STS never issued"));
        assert_eq!(r.header("x-amz-security-token"), Some(token.as_str()));
        let expected = botocore.authorization(r, &key, secret, Some(token), "us-west-2", "aps");
        assert_eq!(r.header("authorization"), Some(expected.as_str()));
        *uses.entry(key).or_default() += 1;
    }
    // Cached: some credentials signed several requests; renewed: more than
    // one set was used, and fewer STS calls than requests were made.
    assert!(uses.values().any(|n| *n >= 2), "{uses:?}");
    assert!(uses.len() >= 2, "{uses:?}");
    assert!(
        calls.len() < requests.len(),
        "{} STS calls for {} requests",
        calls.len(),
        requests.len()
    );
    let logs = relay.logs();
    for (secret, token) in issued.values() {
        assert!(
            !logs.contains(secret.as_str()) && !logs.contains(token.as_str()),
            "{logs}"
        );
    }
}

#[test]
fn environment_and_shared_file_credentials_are_picked_in_the_sdk_order() {
    let dir = tempfile::tempdir().expect("dir");
    let credentials = dir.path().join("credentials");
    std::fs::write(
        &credentials,
        "[default]\naws_access_key_id = AKIDFILEDEFAULT\naws_secret_access_key = s1\n\n[other]\naws_access_key_id = AKIDFILEOTHER\naws_secret_access_key = s2\n",
    )
    .expect("credentials file");
    let config_file = dir.path().join("config");
    std::fs::write(
        &config_file,
        "[default]\nregion = ap-south-1\n[profile other]\nregion = ap-south-1\n",
    )
    .expect("config file");
    let home = dir.path().to_str().expect("utf-8");
    let files = [
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials.to_str().expect("utf-8"),
        ),
        ("AWS_CONFIG_FILE", config_file.to_str().expect("utf-8")),
    ];
    let target = target();
    // (sigv4 block, extra environment) → the access key relay signs with.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 4] = [
        (
            "{}",
            vec![
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "s0"),
            ],
            "AKIDENV",
        ),
        ("{}", vec![], "AKIDFILEDEFAULT"),
        ("{}", vec![("AWS_PROFILE", "other")], "AKIDFILEOTHER"),
        (
            "{profile: other}",
            vec![
                ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                ("AWS_SECRET_ACCESS_KEY", "s0"),
            ],
            "AKIDFILEOTHER",
        ),
    ];
    for (sigv4, extra, expected) in cases {
        let receiver = Receiver::start();
        let mut more: Vec<(&str, &str)> = files.to_vec();
        more.extend(extra.iter().copied());
        let _relay = Relay::start_env(
            &config(&target.addr, &receiver.url, sigv4),
            &clean_env(home, &more),
        );
        let r = &first_requests(&receiver, 1)[0];
        assert_eq!(credential_of(r), expected, "sigv4 {sigv4} with {extra:?}");
        // The region came from the profile in the config file.
        let auth = r.header("authorization").unwrap_or_default();
        assert!(auth.contains("/ap-south-1/aps/aws4_request"), "{auth}");
    }
}

/// As a client that cannot be built: `relay run` logs why the queue cannot
/// start (naming the field, no secret) and sends nothing, while `relay
/// check config` (and `relay gen`) pass where the Pod's AWS settings are not.
#[test]
fn no_region_anywhere_stops_the_queue_naming_the_field_but_the_config_checks() {
    let dir = tempfile::tempdir().expect("dir");
    let home = dir.path().to_str().expect("utf-8");
    let target = target();
    let receiver = Receiver::start();
    let sigv4 = "{access_key: AKID, secret_key: hush-hush}";
    let yaml = config(&target.addr, &receiver.url, sigv4);
    let relay = Relay::start_env(&yaml, &clean_env(home, &[]));
    let line = relay.wait_for_log(&[
        "remote write queue cannot start",
        "remote_write[0].sigv4: region not configured in sigv4.region, AWS_REGION, AWS_DEFAULT_REGION",
    ]);
    assert!(!line.contains("hush-hush"), "{line}");
    common::rw::wait_for_up(&relay, &target.addr, "1");
    assert!(receiver.requests().is_empty(), "{:?}", receiver.requests());
    let file = dir.path().join("relay.yml");
    std::fs::write(&file, &yaml).expect("config");
    let out = common::relay(&["check", "config", file.to_str().expect("utf-8")])
        .envs(clean_env(home, &[]))
        .output()
        .expect("run relay check config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
}

#[test]
#[ignore = "needs python (botocore in the venv)"]
fn role_arn_is_assumed_with_a_signed_sts_call_and_its_credentials_sign() {
    let sts = StsStandIn::start(Duration::from_secs(3600));
    let home = tempfile::tempdir().expect("home");
    let target = target();
    let receiver = Receiver::start();
    let role = "arn:aws:iam::111122223333:role/cross-account-writer";
    let sigv4 = format!(
        "{{region: {REGION}, access_key: {KEY}, secret_key: \"{SECRET}\", role_arn: \"{role}\", external_id: ext-42}}"
    );
    let _relay = Relay::start_env(
        &config(&target.addr, &receiver.url, &sigv4),
        &clean_env(
            home.path().to_str().expect("utf-8"),
            &[("AWS_ENDPOINT_URL_STS", &sts.url)],
        ),
    );
    let requests = first_requests(&receiver, 2);
    let calls = sts.calls();
    assert_eq!(calls.len(), 1, "credentials cached for the hour: {calls:?}");
    let call = &calls[0];
    assert_eq!(call.field("Action"), Some("AssumeRole"));
    assert_eq!(call.field("RoleArn"), Some(role));
    assert_eq!(call.field("ExternalId"), Some("ext-42"));
    // The STS call is signed with the configured keys, for service sts.
    let sts_auth = call
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    assert!(
        sts_auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY}/"))
            && sts_auth.contains(&format!("/{REGION}/sts/aws4_request")),
        "{sts_auth}"
    );
    let mut botocore = Botocore::start();
    let expected = botocore.authorization(&call.request, KEY, SECRET, None, REGION, "sts");
    assert_eq!(sts_auth, expected, "the AssumeRole call's signature");
    for r in &requests {
        assert_eq!(credential_of(r), call.access_key);
        assert_eq!(r.header("x-amz-security-token"), Some(call.token.as_str()));
        let expected = botocore.authorization(
            r,
            &call.access_key,
            &call.secret,
            Some(&call.token),
            REGION,
            "aps",
        );
        assert_eq!(r.header("authorization"), Some(expected.as_str()));
    }
}

#[test]
#[ignore = "needs python (botocore in the venv)"]
fn a_retry_is_signed_again_with_its_own_date() {
    let home = tempfile::tempdir().expect("home");
    let target = target();
    let receiver = Receiver::start();
    receiver.script(vec![Answer::status(503)]);
    let sigv4 = format!("{{region: {REGION}, access_key: {KEY}, secret_key: \"{SECRET}\"}}");
    // A backoff over a second, so the retry falls in another second.
    let yaml = config(&target.addr, &receiver.url, &sigv4).replace(
        "min_backoff: 50ms, max_backoff: 200ms",
        "min_backoff: 1100ms, max_backoff: 2s",
    );
    let _relay = Relay::start_env(&yaml, &clean_env(home.path().to_str().expect("utf-8"), &[]));
    let requests = first_requests(&receiver, 2);
    let (refused, retry) = (&requests[0], &requests[1]);
    assert_eq!(refused.status, 503);
    assert_eq!(retry.body, refused.body, "the retry resends the same batch");
    assert_ne!(
        retry.header("x-amz-date"),
        refused.header("x-amz-date"),
        "the retry was not signed anew"
    );
    let mut botocore = Botocore::start();
    for r in [refused, retry] {
        let expected = botocore.authorization(r, KEY, SECRET, None, REGION, "aps");
        assert_eq!(r.header("authorization"), Some(expected.as_str()));
    }
}
