//! The fuzz targets' bodies (`airlock::fuzzing`) replayed on the stable
//! toolchain over the checked-in seed corpus (`fuzz/corpus/<target>/`) and
//! every crash input kept as a regression (`fuzz/regressions/<target>/`), so
//! CI runs what the fuzzer runs without nightly or libFuzzer. `world_check`
//! also replays the built guests when `AIRLOCK_GUESTS` names them (as
//! `cargo xtask test` does).

use std::path::{Path, PathBuf};

/// The directory `fuzz/` beside this crate.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files directly inside `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    files.sort();
    files
}

/// Runs `body` over the seed corpus and the regressions of `target`; the
/// seed corpus must exist and hold at least one input.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let seeds = files(&fuzz_dir().join("corpus").join(target));
    assert!(
        !seeds.is_empty(),
        "fuzz/corpus/{target}/ is empty or missing; it holds the seeds of the fuzz target"
    );
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    for path in seeds.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("a readable corpus file");
        // Name the input if its body panics.
        eprintln!("replaying {}", path.display());
        body(&data);
    }
    seeds.len() + regressions.len()
}

#[test]
fn toolkit_config_corpus() {
    replay("toolkit_config", airlock::fuzzing::toolkit_config);
}

#[test]
fn json_to_wit_corpus() {
    replay("json_to_wit", airlock::fuzzing::json_to_wit);
}

#[test]
fn fetch_url_corpus() {
    replay("fetch_url", airlock::fuzzing::fetch_url);
}

#[test]
fn world_check_corpus() {
    replay("world_check", airlock::fuzzing::world_check);
    let Some(dir) = std::env::var_os("AIRLOCK_GUESTS") else {
        eprintln!(
            "AIRLOCK_GUESTS is not set: the built guests are not replayed (cargo xtask test sets it)"
        );
        return;
    };
    let guests: Vec<PathBuf> = files(Path::new(&dir))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    assert!(
        !guests.is_empty(),
        "AIRLOCK_GUESTS has no .wasm files; run `cargo xtask build-guests`"
    );
    for path in guests {
        eprintln!("replaying {}", path.display());
        airlock::fuzzing::world_check(&std::fs::read(&path).expect("a readable guest"));
    }
}

/// The seed corpus stays small and text-like: no compiled component is
/// checked in (the guests are copied in at run time by `cargo xtask fuzz`).
#[test]
fn seed_corpus_is_small_and_has_no_wasm_binaries() {
    for target in ["toolkit_config", "json_to_wit", "fetch_url", "world_check"] {
        for kind in ["corpus", "regressions"] {
            for path in files(&fuzz_dir().join(kind).join(target)) {
                let data = std::fs::read(&path).expect("a readable corpus file");
                assert!(
                    data.len() <= 16 << 10,
                    "{} is over 16 KiB; keep seeds small",
                    path.display()
                );
                assert!(
                    !data.starts_with(b"\0asm"),
                    "{} is a wasm binary; seeds are WAT text, built guests are added at run time",
                    path.display()
                );
            }
        }
    }
}
