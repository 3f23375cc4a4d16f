//! The `sign` verb through a real guest: the MAC is the one the test
//! computes itself, the grant decides which key names work, every call is
//! audited by key name, and quotas are per job.

use airlock::{Budget, Grants, JobError, LoadError};
use airlock_core::Decision;
use airlock_tests::{
    TestHost, WEBHOOK_KEY, assert_host_still_works, caps, caps_with_other, grants, hmac_hex, host,
    job_err, load_err, load_ok, signer_grants,
};
use serde_json::json;

fn expected_header(body: &str) -> String {
    format!("sha256={}", hmac_hex(WEBHOOK_KEY, body.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_returns_the_hmac_of_the_body_under_the_named_key() {
    let host = host(caps());
    let tool = load_ok(
        &host,
        "sign-webhook",
        signer_grants(&["webhook"]),
        Budget::default(),
    );
    let out = host
        .run(&tool, Some("sign"), &json!({ "body": "hello" }))
        .await
        .expect("sign runs");
    assert_eq!(
        out.value,
        json!({ "header": expected_header("hello"), "key": "webhook" })
    );
    // The test's own computation, spelled out once.
    assert_eq!(
        expected_header("hello"),
        format!(
            "sha256={}",
            hmac_hex(b"airlock-test-webhook-key-0123456789", b"hello")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_accepts_the_signature_and_rejects_a_tampered_one() {
    let host = host(caps());
    let tool = load_ok(
        &host,
        "sign-webhook",
        signer_grants(&["webhook"]),
        Budget::default(),
    );
    let header = expected_header("hello");
    let verify = |body: &str, header: &str| {
        let args = json!({ "body": body, "header": header });
        let host = &host;
        let tool = &tool;
        async move { host.run(tool, Some("verify"), &args).await }
    };
    assert_eq!(
        verify("hello", &header).await.expect("verify").value,
        json!(true)
    );

    let mut tampered = header.clone().into_bytes();
    let last = tampered.last_mut().expect("not empty");
    *last = if *last == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    assert_eq!(
        verify("hello", &tampered).await.expect("verify").value,
        json!(false)
    );
    assert_eq!(
        verify("hello!", &header).await.expect("verify").value,
        json!(false)
    );
    // Not hex at all: the guest's own error.
    let err = job_err(verify("hello", "sha256=zz").await, "verify zz");
    assert!(matches!(err, JobError::ToolError(_)), "{err:?}");

    let ops: Vec<_> = host
        .audit
        .records()
        .into_iter()
        .filter(|r| r.verb == "sign")
        .map(|r| (r.op, r.decision, r.detail))
        .collect();
    assert_eq!(ops.len(), 3, "{ops:?}");
    for (op, decision, detail) in ops {
        assert_eq!(op, "hmac-sha256-verify");
        assert_eq!(decision, Decision::Allow);
        assert_eq!(detail.as_deref(), Some("key=webhook"));
    }
}

mod environment {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_world_view_has_no_env_no_args_and_only_a_key_name() {
        let host = host(caps());
        let tool = load_ok(
            &host,
            "sign-webhook",
            signer_grants(&["webhook"]),
            Budget::default(),
        );
        let out = host
            .run(&tool, Some("world-view"), &json!({}))
            .await
            .expect("world-view runs");
        let lines: Vec<&str> = out
            .value
            .as_array()
            .expect("a list")
            .iter()
            .map(|l| l.as_str().expect("strings"))
            .collect();
        assert_eq!(lines.len(), 6, "{lines:#?}");
        assert_eq!(lines[0], "environment variables: 0");
        assert_eq!(lines[1], "arguments: 0");
        assert_eq!(lines[2], "stdin: 0 bytes");
        assert!(lines[3].starts_with("files under /: none"), "{}", lines[3]);
        assert_eq!(
            lines[5],
            "the webhook key: only its name, `webhook`; its bytes never enter this tool"
        );
        // Looking around used no verb.
        assert!(
            host.audit.records().is_empty(),
            "{:?}",
            host.audit.records()
        );
    }
}

mod audit {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_sign_call_is_audited_by_key_name() {
        let host = host(caps());
        let tool = load_ok(
            &host,
            "sign-webhook",
            signer_grants(&["webhook"]),
            Budget::default(),
        );
        let out = host
            .run(&tool, Some("sign"), &json!({ "body": "hello" }))
            .await
            .expect("sign runs");
        let records: Vec<_> = host
            .audit
            .records()
            .into_iter()
            .filter(|r| r.job == out.job)
            .collect();
        assert_eq!(
            records.len(),
            2,
            "one sign and one log record: {records:#?}"
        );
        let sign = &records[0];
        assert_eq!(sign.tool, "sign-webhook");
        assert_eq!(sign.verb, "sign");
        assert_eq!(sign.op, "hmac-sha256");
        assert_eq!(sign.decision, Decision::Allow);
        assert_eq!(sign.detail.as_deref(), Some("key=webhook"));
        let log = &records[1];
        assert_eq!((log.verb, log.op), ("log", "emit"));
        assert_eq!(log.decision, Decision::Allow);
        assert_eq!(
            log.detail.as_deref(),
            Some("info: signed 5 bytes with key webhook")
        );
    }
}

mod sign_scope {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_the_grant_does_not_name_is_denied() {
        let host = host(caps_with_other());
        let tool = load_ok(
            &host,
            "sign-webhook",
            signer_grants(&["other"]),
            Budget::default(),
        );
        let err = job_err(
            host.run(&tool, Some("sign"), &json!({ "body": "hello" }))
                .await,
            "sign with an ungranted key",
        );
        match &err {
            JobError::ToolError(v) => {
                let text = v.as_str().unwrap_or_else(|| panic!("a string error: {v}"));
                assert!(text.starts_with("sign denied: "), "{text}");
                assert!(text.contains("webhook"), "{text}");
            }
            other => panic!("expected the tool's own error, got {other:?}"),
        }
        let denials: Vec<_> = host
            .audit
            .records()
            .into_iter()
            .filter(|r| r.verb == "sign")
            .collect();
        assert_eq!(denials.len(), 1, "{denials:#?}");
        assert_eq!(denials[0].op, "hmac-sha256");
        assert_eq!(denials[0].detail.as_deref(), Some("key=webhook"));
        match &denials[0].decision {
            Decision::Deny(why) => assert!(why.starts_with("denied: "), "{why}"),
            Decision::Allow => panic!("the call was allowed"),
        }
        assert_host_still_works(&host).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grant_naming_a_key_the_host_lacks_is_refused_at_load() {
        let host = host(caps());
        let err = load_err(
            &host,
            "sign-webhook",
            signer_grants(&["missing"]),
            Budget::default(),
        );
        match &err {
            LoadError::Grant { tool, reason } => {
                assert_eq!(tool, "sign-webhook");
                assert!(reason.contains("`missing`"), "{reason}");
            }
            other => panic!("expected a grant error, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sign_quotas_are_per_job() {
        let host = airlock_tests::host(caps());
        let tool = load_ok(&host, "sign-webhook", quota(1), Budget::default());
        let expected = json!({ "header": expected_header("hello"), "key": "webhook" });
        assert_eq!(sign_hello(&host, &tool).await.expect("first job"), expected);
        assert_eq!(
            sign_hello(&host, &tool).await.expect("second job"),
            expected
        );

        // A quota of zero shows the quota is enforced inside a job. (Another host:
        // see `cache::one_component_loaded_twice_in_one_host_runs_both_times`.)
        let host = airlock_tests::host(caps());
        let tool = load_ok(&host, "sign-webhook", quota(0), Budget::default());
        match sign_hello(&host, &tool).await {
            Err(JobError::ToolError(v)) => {
                let text = v.as_str().unwrap_or_default();
                assert!(text.contains("sign exhausted its sign-calls quota"), "{v}");
            }
            other => panic!("expected an exhausted quota, got {other:?}"),
        }
    }
}

fn quota(max_calls: u32) -> Grants {
    grants(json!({
        "sign": { "keys": ["webhook"], "max_calls": max_calls },
        "log": {},
    }))
}

async fn sign_hello(host: &TestHost, tool: &airlock::Tool) -> Result<serde_json::Value, JobError> {
    host.run(tool, Some("sign"), &json!({ "body": "hello" }))
        .await
        .map(|o| o.value)
}
