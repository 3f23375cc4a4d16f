//! A source-level wall: no host or capability code may hand a guest ambient
//! authority (the network, the environment, arguments, real stdio, a
//! directory) or link the whole of WASI at once. The forbidden spellings are
//! assembled with `concat!` so this file does not contain them itself (a
//! repository hook greps for them).

use std::path::{Path, PathBuf};

use airlock_tests::workspace_root;

/// What must never appear in host or capability source.
const FORBIDDEN: &[&str] = &[
    concat!("inherit", "_network"),
    concat!("inherit", "_env"),
    concat!("inherit", "_args"),
    concat!("inherit", "_stdio"),
    concat!("preopened", "_dir"),
    concat!("allow_tcp", "(true)"),
    concat!("allow_udp", "(true)"),
    concat!("allow_ip_name_lookup", "(true)"),
    concat!("p2::add_to_linker", "_sync"),
    concat!("p2::add_to_linker", "_async"),
    concat!("add_to_linker", "_with_options"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn scanned_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut dirs = vec![root.join("host/src")];
    let caps = root.join("capabilities");
    for entry in std::fs::read_dir(&caps).expect("capabilities/ exists") {
        let src = entry.expect("an entry").path().join("src");
        if src.is_dir() {
            dirs.push(src);
        }
    }
    let mut files = Vec::new();
    for dir in &dirs {
        rust_files(dir, &mut files);
    }
    files.sort();
    files
}

mod environment {
    use super::*;

    #[test]
    fn no_source_grants_ambient_authority() {
        let files = scanned_files();
        let root = workspace_root();
        for must in [
            "host/src/wasi.rs",
            "host/src/host.rs",
            "capabilities/sign/src/lib.rs",
        ] {
            assert!(
                files.contains(&root.join(must)),
                "{must} was not scanned: {files:?}"
            );
        }
        let mut hits = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            for (n, line) in text.lines().enumerate() {
                for needle in FORBIDDEN {
                    if line.contains(needle) {
                        hits.push(format!(
                            "{}:{}: `{needle}`: {}",
                            file.display(),
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
        assert!(
            hits.is_empty(),
            "forbidden authority in source:\n{}",
            hits.join("\n")
        );
    }
}

mod network {
    use super::*;

    #[test]
    fn the_host_links_no_real_socket_or_http_implementation() {
        // Socket and HTTP imports are answered by host/src/no_network.rs
        // alone; wasmtime-wasi's implementations are never linked.
        let forbidden = [
            ["bindings::", "sockets"].concat(),
            ["wasmtime_wasi", "_http"].concat(),
            ["wasmtime-wasi", "-http"].concat(),
            ["p2::add_to_linker", "_async"].concat(),
            ["p2::add_to_linker", "_sync"].concat(),
            ["add_to_linker_with", "_options"].concat(),
        ];
        let mut sources = vec![workspace_root().join("host/Cargo.toml")];
        let mut dirs = vec![workspace_root().join("host/src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("a source directory") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    sources.push(path);
                }
            }
        }
        assert!(
            sources.len() > 20,
            "the scan found the sources: {sources:?}"
        );
        for path in sources {
            let text = std::fs::read_to_string(&path).expect("a source file");
            for needle in &forbidden {
                assert!(
                    !text.contains(needle.as_str()),
                    "{} mentions `{needle}`",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn the_wasi_context_pins_sockets_off() {
        let path = workspace_root().join("host/src/wasi.rs");
        let text = std::fs::read_to_string(&path).expect("host/src/wasi.rs");
        for pin in [
            "allow_tcp(false)",
            "allow_udp(false)",
            "allow_ip_name_lookup(false)",
            "allow_blocking_current_thread(false)",
        ] {
            assert!(
                text.contains(pin),
                "{} does not pin `{pin}`",
                path.display()
            );
        }
    }
}

#[test]
fn the_forbidden_list_is_not_in_this_file_literally() {
    let this = std::fs::read_to_string(workspace_root().join("tests/integration/source_scan.rs"))
        .expect("this file");
    for needle in FORBIDDEN {
        assert!(
            !this.contains(needle),
            "{needle} is spelled out in source_scan.rs"
        );
    }
}
