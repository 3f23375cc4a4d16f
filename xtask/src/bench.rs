//! `cargo xtask bench [--quick]`: runs the host's benchmark suite (issue #6),
//! reads what criterion saved (`<group>/<case>/new/sample.json`) and what the
//! plain-harness benches wrote, and prints one table — median, p99, the
//! baseline measured in the same run, their ratio, the target and whether it
//! is met — which it also writes to `BENCHMARKS.md` with a description of the
//! machine. A `## Notes` section already in `BENCHMARKS.md` (hand-written
//! analysis) is kept as it is. The rows that have a target, and the
//! cold-start ladder, are also quoted in `README.md` between
//! `<!-- bench:start -->` and `<!-- bench:end -->`.
//!
//! Medians and p99s are over criterion's samples, each sample's time divided
//! by its iteration count (the per-iteration mean of that sample), so a p99
//! is the slowest 1% of samples, not of single iterations.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The bench targets of `host/benches` this command runs, in order.
const BENCHES: &[&str] = &[
    "job",
    "throughput",
    "verb_call",
    "payload",
    "interrupt",
    "ladder",
    "density",
    "mcp",
    "serve",
    "busy",
    "refusal",
    "supply",
    "kv",
];

/// Result directories (criterion groups) the run rewrites; removed first so
/// that a bench that did not run cannot leave an old number behind.
const GROUPS: &[&str] = &[
    "job_cold",
    "load_cached",
    "job_throughput",
    "verb_call",
    "payload",
    "interrupt",
    "ladder",
    "density",
    "mcp",
    "serve",
    "mcp_busy",
    "refuse_large",
    "load_pinned",
    "tool_add",
    "kv_get",
    "kv_set",
];

/// Where the hand-written part of `BENCHMARKS.md` starts.
const NOTES_HEADING: &str = "## Notes";

/// Runs the suite with guests from `guests` and writes `BENCHMARKS.md`.
pub fn bench(root: &Path, guests: &Path, args: &[String]) -> Result<()> {
    let mut quick = false;
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            other => bail!("bench takes only --quick, got `{other}`"),
        }
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let home = target_dir.join("criterion");
    for group in GROUPS {
        let dir = home.join(group);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("could not clear {}", dir.display()))?;
        }
    }

    let load_before = load_average();
    let mut cmd = crate::cargo(root);
    cmd.args(["bench", "-p", "airlock"]);
    for b in BENCHES {
        cmd.args(["--bench", b]);
    }
    cmd.env("AIRLOCK_GUESTS", guests)
        .env("CRITERION_HOME", &home)
        .env("AIRLOCK_BENCH_QUICK", if quick { "1" } else { "0" });
    crate::run(&mut cmd, "the benchmarks failed")?;
    let load_after = load_average();

    let results = Results { home };
    let rows = rows(&results)?;
    let ladder = ladder(&results)?;
    let table = render_table(&rows);
    let ladder_table = render_ladder(&ladder);
    println!("\n{table}\n{ladder_table}");

    let machine = machine(root, &load_before, &load_after, quick);
    let path = root.join("BENCHMARKS.md");
    let notes = std::fs::read_to_string(&path)
        .ok()
        .and_then(|old| old.find(NOTES_HEADING).map(|i| old[i..].to_string()))
        .unwrap_or_else(|| format!("{NOTES_HEADING}\n\n(none yet)\n"));
    let doc = format!(
        "# Benchmarks\n\n\
         Written by `cargo xtask bench{}` from the numbers of one run; do not edit above\n\
         *Notes*. Every row compares against a baseline measured in the same run\n\
         (`host/benches/*.rs` say exactly what each side does). Times are per\n\
         iteration: median and p99 over criterion's samples (each sample's mean).\n\
         *ratio* = median ÷ baseline median.\n\n\
         ## Machine\n\n{machine}\n## Results\n\n{table}\n\
         ## Cold-start ladder\n\nOne cold start of each, as a multiple of one airlock job \
         (medians of `job_cold` and `ladder`).\n\n{ladder_table}\n{notes}",
        if quick { " --quick" } else { "" },
    );
    std::fs::write(&path, doc).with_context(|| format!("could not write {}", path.display()))?;
    println!("wrote {}", path.display());
    quote_in_readme(root, &rows, &ladder)
}

/// The markers around the generated part of the README's Performance section.
const README_START: &str = "<!-- bench:start -->";
const README_END: &str = "<!-- bench:end -->";

/// Replaces the README's text between [`README_START`] and [`README_END`]
/// with the rows that have a target and the ladder, from the same run.
fn quote_in_readme(
    root: &Path,
    rows: &[Row],
    ladder: &[(String, Result<Stats, String>)],
) -> Result<()> {
    let path = root.join("README.md");
    let readme = std::fs::read_to_string(&path)
        .with_context(|| format!("could not read {}", path.display()))?;
    let (Some(start), Some(end)) = (readme.find(README_START), readme.find(README_END)) else {
        println!("README.md has no {README_START} ... {README_END} block; not quoted");
        return Ok(());
    };
    let headline: Vec<Row> = rows.iter().filter(|r| r.met.is_some()).cloned().collect();
    let block = format!(
        "{README_START}\n{}\nCold starts, as multiples of one airlock job:\n\n{}{README_END}",
        render_table(&headline),
        render_ladder(ladder),
    );
    let updated = format!(
        "{}{block}{}",
        &readme[..start],
        &readme[end + README_END.len()..]
    );
    std::fs::write(&path, updated)
        .with_context(|| format!("could not write {}", path.display()))?;
    println!("quoted the headline rows in {}", path.display());
    Ok(())
}

/// Median and p99 of one criterion case, per iteration, in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    p99: f64,
}

/// The results directory of a run.
struct Results {
    home: PathBuf,
}

impl Results {
    /// The stats of `group/case`, or `None` when that case did not run.
    fn stats(&self, group: &str, case: &str) -> Result<Option<Stats>> {
        let path = self.home.join(group).join(case).join("new/sample.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let numbers = |key: &str| -> Result<Vec<f64>> {
            json[key]
                .as_array()
                .with_context(|| format!("{} has no `{key}` array", path.display()))?
                .iter()
                .map(|v| v.as_f64().context("a sample is not a number"))
                .collect()
        };
        let (iters, times) = (numbers("iters")?, numbers("times")?);
        let mut per_iter: Vec<f64> = iters
            .iter()
            .zip(&times)
            .filter(|(i, _)| **i > 0.0)
            .map(|(i, t)| t / i)
            .collect();
        if per_iter.is_empty() {
            bail!("{} holds no samples", path.display());
        }
        per_iter.sort_by(f64::total_cmp);
        Ok(Some(Stats {
            median: percentile(&per_iter, 50.0),
            p99: percentile(&per_iter, 99.0),
        }))
    }

    /// Like [`Results::stats`], but a missing case is an error.
    fn need(&self, group: &str, case: &str) -> Result<Stats> {
        self.stats(group, case)?
            .with_context(|| format!("no results for {group}/{case}: did its bench run?"))
    }

    /// What the plain-harness `bench` wrote as `name`.
    fn json(&self, bench: &str, name: &str) -> Result<Value> {
        let path = self.home.join(bench).join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no {}: did the {bench} bench run?", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One line of the table.
#[derive(Clone)]
struct Row {
    bench: &'static str,
    case: String,
    median: String,
    p99: String,
    baseline: String,
    ratio: String,
    target: &'static str,
    met: Option<bool>,
}

impl Row {
    /// A timed row against a timed baseline.
    fn timed(
        bench: &'static str,
        case: impl Into<String>,
        s: Stats,
        base_name: &str,
        base: Stats,
        target: &'static str,
        met: Option<bool>,
    ) -> Row {
        Row {
            bench,
            case: case.into(),
            median: time(s.median),
            p99: time(s.p99),
            baseline: format!("{base_name} {}", time(base.median)),
            ratio: format!("{:.2}", s.median / base.median),
            target,
            met,
        }
    }
}

/// A duration in nanoseconds, in the unit that reads best.
fn time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// Every row of the table, from a finished run.
fn rows(r: &Results) -> Result<Vec<Row>> {
    let mut rows = Vec::new();

    // 1. job_cold
    let air = r.need("job_cold", "airlock")?;
    let raw = r.need("job_cold", "raw_wasmtime")?;
    let spawn = r.need("job_cold", "process_spawn")?;
    let ratio = air.median / raw.median;
    rows.push(Row::timed(
        "job_cold",
        "trivial job",
        air,
        "raw wasmtime",
        raw,
        "p50 ≤ 10 µs, ratio ≤ 1.2",
        Some(air.median <= 10_000.0 && ratio <= 1.2),
    ));
    rows.push(Row::timed(
        "job_cold",
        "trivial job",
        air,
        "spawn /bin/true",
        spawn,
        "(for scale)",
        None,
    ));

    // 2. job_throughput: 1 worker, 2 workers, and every core when more
    let per_s = |s: Stats| 1e9 / s.median;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let counts = [1, 2].into_iter().chain((cores > 2).then_some(cores));
    for workers in counts {
        let (Some(air), Some(raw)) = (
            r.stats("job_throughput", &format!("airlock_{workers}w"))?,
            r.stats("job_throughput", &format!("raw_wasmtime_{workers}w"))?,
        ) else {
            bail!("no job_throughput results for {workers} workers: did its bench run?");
        };
        let (target, met) = match workers {
            2 => (
                "≥ 100k jobs/s, ratio ≤ 1.15",
                Some(per_s(air) >= 100_000.0 && air.median / raw.median <= 1.15),
            ),
            _ => ("(scaling)", None),
        };
        rows.push(Row::timed(
            "job_throughput",
            format!(
                "{workers} worker{}: {:.0} jobs/s",
                if workers == 1 { "" } else { "s" },
                per_s(air)
            ),
            air,
            &format!("raw wasmtime ({:.0}/s)", per_s(raw)),
            raw,
            target,
            met,
        ));
    }
    let air = r.need("job_throughput", "airlock_2w")?;
    let spawn = r.need("job_throughput", "process_spawn_2w")?;
    rows.push(Row::timed(
        "job_throughput",
        format!("2 workers: {:.0} jobs/s", per_s(air)),
        air,
        &format!("spawn loop ({:.0}/s)", per_s(spawn)),
        spawn,
        "ratio ≤ 0.02 (≥ 50× spawn)",
        Some(air.median / spawn.median <= 0.02),
    ));

    // 3. verb_call
    for size in ["16B", "1KiB", "64KiB"] {
        let air = r.need("verb_call", &format!("airlock_{size}"))?;
        let raw = r.need("verb_call", &format!("raw_{size}"))?;
        rows.push(Row::timed(
            "verb_call",
            format!("log.emit {size}, per call"),
            air,
            "raw func_wrap",
            raw,
            "ratio ≤ 1.1",
            Some(air.median / raw.median <= 1.1),
        ));
    }
    let air = r.need("verb_call", "airlock_16B")?;
    let raw = r.need("verb_call", "raw_16B")?;
    let extra = air.median - raw.median;
    rows.push(Row {
        bench: "verb_call",
        case: "policy + audit per call (16 B: airlock − raw)".into(),
        median: time(extra),
        p99: "—".into(),
        baseline: "—".into(),
        ratio: "—".into(),
        target: "≤ 50 ns",
        met: Some(extra <= 50.0),
    });

    // 4. payload
    payload_rows(r, &mut rows)?;

    // 5. load_cached
    let air = r.need("load_cached", "airlock")?;
    let raw = r.need("load_cached", "raw_deserialize_file")?;
    rows.push(Row::timed(
        "load_cached",
        "sign_webhook",
        air,
        "deserialize_file",
        raw,
        "(for scale)",
        None,
    ));
    let air = r.need("load_cached", "airlock_5mb")?;
    let raw = r.need("load_cached", "raw_deserialize_file_5mb")?;
    rows.push(Row::timed(
        "load_cached",
        "5 MB component",
        air,
        "deserialize_file",
        raw,
        "p50 ≤ 2 ms",
        Some(air.median <= 2_000_000.0),
    ));
    let warm = r.need("load_cached", "airlock_warm_process_5mb")?;
    rows.push(Row::timed(
        "load_cached",
        "5 MB component, loaded again by the same process",
        warm,
        "deserialize_file",
        raw,
        "p50 ≤ 50 µs",
        Some(warm.median <= 50_000.0),
    ));
    let sha = r.need("load_cached", "sha256_input_5mb")?;
    rows.push(Row::timed(
        "load_cached",
        "only sha256 of the 5 MB input",
        sha,
        "deserialize_file",
        raw,
        "(the floor of a content-keyed cache)",
        None,
    ));

    // A large component refused by its imports, before any compile.
    let refused = r.need("refuse_large", "airlock_refusal")?;
    let compile = r.need("refuse_large", "compile")?;
    rows.push(Row::timed(
        "refuse_large",
        "16 MB component importing what is never linked",
        refused,
        "compile",
        compile,
        "p50 ≤ 50 ms",
        Some(refused.median <= 50_000_000.0),
    ));

    // What trust costs at every load, and pinning a tool (issue 14): the
    // check must not measurably change `load_cached`, the cached load of a
    // new process. A process that loaded the bytes before verifies nothing
    // again (the warm row above) but still checks trust every time.
    let bare = r.need("load_pinned", "bare_5mb")?;
    let pinned = r.need("load_pinned", "pinned_5mb")?;
    let check = r.need("load_pinned", "check_only")?;
    let cached = r.need("load_cached", "airlock_5mb")?;
    rows.push(Row::timed(
        "load_pinned",
        "5 MB pinned tool: the trust check of every load (lock, signatures, approval, grants)",
        check,
        "load_cached 5 MB",
        cached,
        "ratio ≤ 0.05 (no measurable change)",
        Some(check.median / cached.median <= 0.05),
    ));
    rows.push(Row::timed(
        "load_pinned",
        "5 MB pinned tool, loaded again by the same process",
        pinned,
        "same bytes bare, loaded again",
        bare,
        "(for scale)",
        None,
    ));
    // Needs Debian's docker-registry; without it the bench skips this group.
    if let (Some(add), Some(push)) = (
        r.stats("tool_add", "add_and_first_load_5mb")?,
        r.stats("tool_add", "push_5mb")?,
    ) {
        rows.push(Row::timed(
            "tool_add",
            "add + first load of a 5 MB tool from a loopback registry (2 processes)",
            add,
            "push",
            push,
            "(for scale)",
            None,
        ));
    }

    // 6. density
    let d = r.json("density", "results.json")?;
    let kib = d["kib_per_instance"]
        .as_f64()
        .context("density: kib_per_instance")?;
    let count = d["instances"].as_u64().context("density: instances")?;
    let failure = d["failure"].as_str().map(str::to_string);
    rows.push(Row {
        bench: "density",
        case: "RSS per idle word_count instance".into(),
        median: format!("{kib:.1} KiB"),
        p99: "—".into(),
        baseline: "—".into(),
        ratio: "—".into(),
        target: "≤ 8 KiB",
        met: Some(kib <= 8.0),
    });
    rows.push(Row {
        bench: "density",
        case: {
            let maps = d["maps_per_instance"].as_f64().unwrap_or(f64::NAN);
            let limit = d["max_map_count"]
                .as_u64()
                .map_or("unknown".into(), |n| n.to_string());
            let why = match &failure {
                Some(f) => format!("stopped by: {f}"),
                None => "stopped at the target".into(),
            };
            format!("live instances ({why}; {maps:.1} mappings each, vm.max_map_count {limit})")
        },
        median: count.to_string(),
        p99: "—".into(),
        baseline: "—".into(),
        ratio: "—".into(),
        target: "≥ 20,000",
        met: Some(count >= 20_000),
    });

    // 7. interrupt
    for (label, case) in [("tight loop", "spin"), ("call-heavy", "calls")] {
        let none = r.need("interrupt", &format!("{case}_none"))?;
        for (mode, target) in [
            ("epoch", "ratio ≤ 1.10"),
            ("fuel", "(for scale)"),
            ("fuel_epoch", "(airlock's engine)"),
        ] {
            let s = r.need("interrupt", &format!("{case}_{mode}"))?;
            rows.push(Row::timed(
                "interrupt",
                format!("{label}, {}", mode.replace('_', "+")),
                s,
                "no instrumentation",
                none,
                target,
                (mode == "epoch").then_some(s.median / none.median <= 1.10),
            ));
        }
    }
    let kill = r.need("interrupt", "deadline_kill")?;
    rows.push(Row {
        bench: "interrupt",
        case: "deadline → trapped job (10 ms tick)".into(),
        median: time(kill.median),
        p99: time(kill.p99),
        baseline: "—".into(),
        ratio: "—".into(),
        target: "p99 ≤ 12 ms (one tick + 2 ms)",
        met: Some(kill.p99 <= 12_000_000.0),
    });

    // 8. mcp: one tools/call end to end, stdio and HTTP
    let job = r.need("job_cold", "airlock")?;
    let stdio = r.need("mcp", "stdio")?;
    let http = r.need("mcp", "http")?;
    let latency = r.json("mcp", "latency.json")?;
    let p50 = |transport: &str| -> Result<f64> {
        latency[transport]["p50_ns"]
            .as_f64()
            .with_context(|| format!("mcp: latency.json has no {transport}.p50_ns"))
    };
    rows.push(Row::timed(
        "mcp",
        format!(
            "tools/call over stdio (single-call p50 {})",
            time(p50("stdio")?)
        ),
        stdio,
        "airlock job",
        job,
        "(for scale)",
        None,
    ));
    let http_p50 = p50("http")?;
    rows.push(Row::timed(
        "mcp",
        format!(
            "tools/call over HTTP, client without TCP_NODELAY (single-call p50 {})",
            time(http_p50)
        ),
        http,
        "stdio",
        stdio,
        "p50 ≤ 5 ms",
        Some(http_p50 <= 5_000_000.0),
    ));

    // 8b. serve: tools/call throughput and latency at 1 and 50 clients,
    // straight to one replica and through nginx in front of it.
    let load = r.json("serve", "load.json")?;
    for clients in [1, 50] {
        let direct = &load[format!("direct_{clients}")];
        let rate = |v: &Value| v["calls_per_s"].as_f64();
        let d = rate(direct).with_context(|| format!("serve: no direct_{clients} row"))?;
        let ns = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        rows.push(Row {
            bench: "serve",
            case: format!("MCP tools/call, {clients} client(s), direct: {d:.0} calls/s"),
            median: time(ns(direct, "p50_ns")),
            p99: time(ns(direct, "p99_ns")),
            baseline: "—".into(),
            ratio: "—".into(),
            target: "(baseline of the nginx row)",
            met: None,
        });
        let proxied = &load[format!("nginx_{clients}")];
        match rate(proxied) {
            Some(n) => rows.push(Row {
                bench: "serve",
                case: format!("… through nginx: {n:.0} calls/s"),
                median: time(ns(proxied, "p50_ns")),
                p99: time(ns(proxied, "p99_ns")),
                baseline: format!("direct {d:.0} calls/s"),
                ratio: format!("{:.2}", n / d),
                target: "(ratio = calls/s through nginx ÷ direct)",
                met: None,
            }),
            None => rows.push(Row {
                bench: "serve",
                case: "… through nginx".into(),
                median: "absent".into(),
                p99: "—".into(),
                baseline: format!("direct {d:.0} calls/s"),
                ratio: proxied["skipped"].as_str().unwrap_or("skipped").into(),
                target: "",
                met: None,
            }),
        }
    }
    // 8c. mcp_busy: a trivial call while 2 × cores guests spin, jobs on the
    // server's runtime (before the job executor) and on the executor
    let inline = r.need("mcp_busy", "jobs_on_server_runtime")?;
    let executor = r.need("mcp_busy", "jobs_on_executor")?;
    let idle = r.need("mcp_busy", "idle")?;
    rows.push(Row::timed(
        "mcp_busy",
        "tools/call over HTTP while 2 guests per core spin, jobs on the job executor",
        executor,
        "jobs on the server's runtime",
        inline,
        "p50 ≤ 50 ms",
        Some(executor.median <= 50_000_000.0),
    ));
    rows.push(Row::timed(
        "mcp_busy",
        "tools/call over HTTP while 2 guests per core spin, jobs on the job executor",
        executor,
        "nothing spinning",
        idle,
        "(for scale)",
        None,
    ));

    // 9. ladder (details in its own table)
    let air = r.need("job_cold", "airlock")?;
    for (case, rung) in ladder(r)?.into_iter().skip(1) {
        let (median, p99, ratio) = match rung {
            Ok(s) => (
                time(s.median),
                time(s.p99),
                format!("{:.1}", s.median / air.median),
            ),
            Err(why) => ("absent".into(), "—".into(), why),
        };
        rows.push(Row {
            bench: "ladder",
            case,
            median,
            p99,
            baseline: format!("airlock job {}", time(air.median)),
            ratio,
            target: "(ratio = × an airlock job)",
            met: None,
        });
    }

    // kv: one call through the verb (SQLite store) against direct rusqlite.
    for (group, case) in [("kv_get", "get 16 B"), ("kv_set", "set 16 B")] {
        rows.push(Row::timed(
            group,
            format!("{case}, per call"),
            r.need(group, "verb")?,
            "direct rusqlite",
            r.need(group, "direct")?,
            "(for scale)",
            None,
        ));
    }
    Ok(rows)
}

/// The payload rows: each whole job against the alloc+copy floor, then (for
/// scale, against the same floor) where the time goes.
fn payload_rows(r: &Results, rows: &mut Vec<Row>) -> Result<()> {
    for (kind, label, floor_kind, sizes) in [
        (
            "string",
            "string",
            "string",
            &["1KiB", "64KiB", "1MiB", "16MiB"][..],
        ),
        (
            "bytes",
            "bytes as array",
            "bytes",
            &["1KiB", "64KiB", "1MiB"][..],
        ),
        (
            "bytes_b64",
            "bytes as base64",
            "bytes",
            &["1KiB", "64KiB", "1MiB"][..],
        ),
    ] {
        for size in sizes {
            let air = r.need("payload", &format!("airlock_{kind}_{size}"))?;
            let floor = r.need("payload", &format!("floor_{floor_kind}_{size}"))?;
            let in_range = matches!(*size, "64KiB" | "1MiB");
            let ratio = air.median / floor.median;
            rows.push(Row::timed(
                "payload",
                format!("{label} {size} (whole job)"),
                air,
                "alloc+copy(+utf8)",
                floor,
                if in_range {
                    "ratio ≤ 2.5 (≥ 0.4× floor)"
                } else {
                    "(outside 64 KiB–1 MiB)"
                },
                in_range.then_some(ratio <= 2.5),
            ));
        }
    }
    let parts = [
        ("string", "convert", "string: JSON → WIT value only"),
        ("string", "raw_val", "string: raw wasmtime job, Val API"),
        (
            "string",
            "raw_typed",
            "string: raw wasmtime job, typed call",
        ),
        ("bytes", "convert", "bytes as array: JSON → WIT value only"),
        (
            "bytes_b64",
            "convert",
            "bytes as base64: JSON → WIT value only",
        ),
        ("bytes_b64", "decode", "bytes as base64: decode only"),
        ("bytes", "raw_val", "bytes: raw wasmtime job, Val API"),
        ("bytes", "raw_typed", "bytes: raw wasmtime job, typed call"),
    ];
    for size in ["64KiB", "1MiB"] {
        for (kind, part, label) in parts {
            let case = match part {
                "decode" => format!("decode_b64_{size}"),
                _ => format!("{part}_{kind}_{size}"),
            };
            let floor_kind = if kind == "string" { "string" } else { "bytes" };
            rows.push(Row::timed(
                "payload",
                format!("{label} {size}"),
                r.need("payload", &case)?,
                "alloc+copy(+utf8)",
                r.need("payload", &format!("floor_{floor_kind}_{size}"))?,
                "(for scale)",
                None,
            ));
        }
    }
    Ok(())
}

/// The cold-start ladder: each rung's stats, or why it is absent.
fn ladder(r: &Results) -> Result<Vec<(String, Result<Stats, String>)>> {
    let absent = r.json("ladder", "absent.json").unwrap_or(Value::Null);
    let mut rungs = vec![
        (
            "airlock job".to_string(),
            Ok(r.need("job_cold", "airlock")?),
        ),
        (
            "raw wasmtime job".into(),
            Ok(r.need("job_cold", "raw_wasmtime")?),
        ),
        (
            "spawn /bin/true".into(),
            Ok(r.need("job_cold", "process_spawn")?),
        ),
    ];
    for (case, label) in [("node_e0", "node -e 0"), ("docker_run", "docker run")] {
        let rung = match r.stats("ladder", case)? {
            Some(s) => Ok(s),
            None => Err(absent[case].as_str().unwrap_or("did not run").to_string()),
        };
        rungs.push((label.into(), rung));
    }
    Ok(rungs)
}

/// The results table in Markdown.
fn render_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| bench | case | median | p99 | baseline (median) | ratio | target | met? |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.bench, r.case, r.median, r.p99, r.baseline, r.ratio, r.target, met
        );
    }
    out
}

/// The ladder table in Markdown.
fn render_ladder(rungs: &[(String, Result<Stats, String>)]) -> String {
    let air = rungs
        .first()
        .and_then(|(_, s)| s.as_ref().ok())
        .map(|s| s.median);
    let mut out = String::from("| start | median | p99 | × airlock job |\n|---|---|---|---|\n");
    for (name, rung) in rungs {
        let _ = match (rung, air) {
            (Ok(s), Some(a)) => writeln!(
                out,
                "| {name} | {} | {} | {:.1} |",
                time(s.median),
                time(s.p99),
                s.median / a
            ),
            (Ok(s), None) => writeln!(out, "| {name} | {} | {} | — |", time(s.median), time(s.p99)),
            (Err(why), _) => writeln!(out, "| {name} | absent: {why} | — | — |"),
        };
    }
    out
}

/// The first line of `program args`' stdout, or `unknown`.
fn output(root: &Path, program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The value of `key` in a `key : value` file such as `/proc/cpuinfo`.
fn proc_field(path: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// The pinned wasmtime version, from `Cargo.lock`.
fn wasmtime_version(root: &Path) -> String {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    lock.split("[[package]]")
        .find(|block| block.lines().any(|l| l == "name = \"wasmtime\""))
        .and_then(|block| block.lines().find_map(|l| l.strip_prefix("version = ")))
        .map_or_else(|| "unknown".into(), |v| v.trim_matches('"').to_string())
}

/// The machine section of `BENCHMARKS.md`.
fn machine(root: &Path, load_before: &str, load_after: &str, quick: bool) -> String {
    let cpu = proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let ram = proc_field("/proc/meminfo", "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("unknown".into(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".into(), |k| k.trim().to_string());
    let settings = if quick {
        "criterion 0.8, `--quick`: 0.3 s warm-up and 1 s measurement per case"
    } else {
        "criterion 0.8: 0.7 s warm-up and 2.5 s measurement per case, 50 samples \
         (ladder: 10 samples; deadline_kill: one job per sample)"
    };
    format!(
        "| | |\n|---|---|\n\
         | CPU | {cpu} |\n| cores | {cores} |\n| RAM | {ram} |\n| kernel | {kernel} |\n\
         | rustc | {} |\n| wasmtime | {} |\n| date | {} |\n\
         | load average (1/5/15 min) | before {load_before}; after {load_after} |\n\
         | settings | {settings} |\n",
        output(root, "rustc", &["-V"]),
        wasmtime_version(root),
        output(root, "date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    )
}
