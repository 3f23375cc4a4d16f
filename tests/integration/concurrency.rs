//! Many jobs at once on one host: good ones get exactly their own results,
//! bad ones exactly their own typed errors, and the host keeps working.

use std::sync::Arc;
use std::time::Instant;

use airlock_tests::mixed::{Kind, Tools, one, text_for};
use airlock_tests::{assert_host_still_works, caps, expected_counts, host};
use serde_json::json;
use tokio::task::JoinSet;

const JOBS: usize = 200;

mod pool {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_hundred_mixed_jobs_each_get_their_own_outcome() {
        let host = Arc::new(host(caps()));
        let tools = Arc::new(Tools::load(&host));
        let started = Instant::now();
        let mut jobs = JoinSet::new();
        for i in 0..JOBS {
            let host = host.clone();
            let tools = tools.clone();
            // Half the jobs are adversarial.
            jobs.spawn(async move { one(&host, &tools, i, Kind::of(i, 2)).await });
        }
        let mut failures = Vec::new();
        let mut done = 0;
        while let Some(joined) = jobs.join_next().await {
            done += 1;
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(failure)) => failures.push(failure),
                Err(e) => failures.push(format!("a job task panicked: {e}")),
            }
        }
        let elapsed = started.elapsed();
        eprintln!("{JOBS} mixed jobs took {elapsed:?}");
        assert_eq!(done, JOBS);
        assert!(
            failures.is_empty(),
            "{} of {JOBS} jobs went wrong:\n{}",
            failures.len(),
            failures.join("\n")
        );

        // The host still serves, and keeps numbering jobs.
        assert_host_still_works(&host).await;
        let again = host
            .run(host.word_count(), None, &json!({ "text": text_for(7) }))
            .await
            .expect("a good job after the storm");
        assert_eq!(again.value, expected_counts(&text_for(7)));
        assert!(
            again.job > JOBS as u64,
            "job numbers keep counting: {}",
            again.job
        );
    }
}
