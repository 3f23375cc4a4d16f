//! The `log` verb's lines reach the job's output, and the key bytes behind
//! the `sign` verb appear nowhere a tool's job can put them: not in stdout,
//! stderr, logs, the result, or the audit trail.

use airlock::{Budget, JobOutput};
use airlock_log::Level;
use airlock_tests::{WEBHOOK_KEY, caps, host, load_ok, signer_grants};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guests_log_line_is_in_the_job_output() {
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
    assert_eq!(out.logs.len(), 1, "{:?}", out.logs);
    let line = &out.logs[0];
    assert_eq!(line.message, "signed 5 bytes with key webhook");
    assert!(matches!(line.level, Level::Info), "{:?}", line.level);
    assert!(!line.truncated);
    // Logs go to the job, not to stdout or stderr.
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "");
}

/// Every way the key could be spelled if it leaked, and 12-byte pieces of it.
fn key_spellings() -> Vec<Vec<u8>> {
    let mut s = vec![
        WEBHOOK_KEY.to_vec(),
        hex::encode(WEBHOOK_KEY).into_bytes(),
        hex::encode_upper(WEBHOOK_KEY).into_bytes(),
        format!("{WEBHOOK_KEY:?}").into_bytes(),
    ];
    s.extend(WEBHOOK_KEY.windows(12).map(<[u8]>::to_vec));
    s
}

fn assert_no_key(what: &str, haystack: &[u8]) {
    for needle in key_spellings() {
        assert!(
            !haystack
                .windows(needle.len())
                .any(|w| w == needle.as_slice()),
            "{what} contains key material {:?}",
            String::from_utf8_lossy(&needle)
        );
    }
}

fn assert_output_has_no_key(what: &str, out: &JobOutput) {
    assert_no_key(&format!("{what} stdout"), out.stdout.as_bytes());
    assert_no_key(&format!("{what} stderr"), out.stderr.as_bytes());
    assert_no_key(&format!("{what} value"), out.value.to_string().as_bytes());
    assert_no_key(
        &format!("{what} logs"),
        format!("{:?}", out.logs).as_bytes(),
    );
    for line in &out.logs {
        assert_no_key(&format!("{what} log line"), line.message.as_bytes());
    }
    assert_no_key(&format!("{what} output"), format!("{out:?}").as_bytes());
}

mod secrets {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_key_bytes_never_leave_the_host() {
        let host = host(caps());
        let tool = load_ok(
            &host,
            "sign-webhook",
            signer_grants(&["webhook"]),
            Budget::default(),
        );
        // The body itself must not be what carries the key into the output.
        let body = "a body that is not the key";
        let signed = host
            .run(&tool, Some("sign"), &json!({ "body": body }))
            .await
            .expect("sign runs");
        assert_output_has_no_key("sign", &signed);
        let header = signed.value["header"]
            .as_str()
            .expect("a header")
            .to_string();
        let verified = host
            .run(
                &tool,
                Some("verify"),
                &json!({ "body": body, "header": header }),
            )
            .await
            .expect("verify runs");
        assert_eq!(verified.value, json!(true));
        assert_output_has_no_key("verify", &verified);
        let view = host
            .run(&tool, Some("world-view"), &json!({}))
            .await
            .expect("world-view runs");
        assert_output_has_no_key("world-view", &view);

        let overreach = load_ok(
            &host,
            "overreach",
            signer_grants(&["webhook"]),
            Budget::default(),
        );
        let out = host
            .run(&overreach, None, &json!({}))
            .await
            .expect("overreach runs");
        assert_output_has_no_key("overreach", &out);

        let records = host.audit.records();
        // sign: hmac + log; verify: hmac-verify; world-view: none; overreach: log + hmac.
        assert_eq!(records.len(), 5, "{records:#?}");
        for r in &records {
            assert_no_key("an audit record", format!("{r:?}").as_bytes());
            assert_no_key(
                "an audit record as JSON",
                airlock::audit::to_json(r).to_string().as_bytes(),
            );
        }
        // Nor the host's own description of its capabilities.
        assert_no_key(
            "the capabilities",
            format!("{:?}", host.capabilities()).as_bytes(),
        );
    }
}
