//! What the `sql` verb costs over running the same query directly: a
//! 1,000-row, two-column SELECT from a SQLite file.
//!
//! Run with `cargo bench -p airlock --bench sql`.
//!
//! * `verb_1000_rows`: `sql.query` on a job's `SqlState` (the verb's `Host`
//!   method, as a guest's call reaches it): parse with sqlparser, check
//!   against the grant, rewrite the table into its view, run on the job's
//!   read-only connection behind the authorizer and progress handler (on the
//!   blocking pool), convert every value, write an audit record (to a
//!   `NullAudit`). The guest boundary (lowering the rows into guest memory)
//!   is not included: `verb_call` measures that cost per byte.
//! * `direct_1000_rows`: the same SELECT on a read-only rusqlite connection
//!   held by the bench, prepared from the statement cache, every value
//!   converted into the same WIT values.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_core::bindings::airlock::verbs::sql::Host;
use airlock_core::{Capability, Job, NullAudit};
use airlock_sql::bindings::Value;
use airlock_sql::{Database, PseudonymKey, SqlCapability, SqlGrant};
use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::types::ValueRef;

const QUERY: &str = "SELECT n, s FROM t";

fn direct(conn: &rusqlite::Connection) -> Vec<Vec<Value>> {
    let mut stmt = conn.prepare_cached(QUERY).unwrap();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let mut values = Vec::with_capacity(2);
        for i in 0..2 {
            values.push(match row.get_ref(i).unwrap() {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Integer(n),
                ValueRef::Real(x) => Value::Real(x),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(values);
    }
    out
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (n INTEGER, s TEXT);
         WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000)
         INSERT INTO t SELECT n, 'row number ' || n FROM c;",
    )
    .unwrap();
    drop(conn);
    let cap = SqlCapability::new(
        [("bench".to_string(), Database::Sqlite { path: path.clone() })],
        PseudonymKey::random(),
    );
    let grant: SqlGrant = toml::from_str(
        "database = \"bench\"\nmax_rows = 1000\n[tables.t]\ncolumns = [\"n\", \"s\"]\n",
    )
    .unwrap();
    cap.check_grant(&grant).unwrap();
    let job = Job::new(
        1,
        "bench".into(),
        Instant::now() + Duration::from_secs(24 * 3600),
        Arc::new(NullAudit),
    );
    let mut state = cap.state(Arc::new(grant), job);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let direct_conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    assert_eq!(direct(&direct_conn).len(), 1000);
    let mut g = c.benchmark_group("sql_query");
    g.bench_function("verb_1000_rows", |b| {
        b.iter(|| {
            let rows = rt
                .block_on(state.query(QUERY.into(), Vec::new()))
                .expect("the query runs");
            assert_eq!(rows.rows.len(), 1000);
            black_box(rows)
        })
    });
    g.bench_function("direct_1000_rows", |b| {
        b.iter(|| black_box(direct(&direct_conn)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
