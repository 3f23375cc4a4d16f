//! Snoop: a probe for tests.
//! It tries to read the environment, arguments, stdin and well-known files.

wit_bindgen::generate!({
    world: "airlock-guest:snoop/snoop",
    path: ["../../wit", "wit"],
    generate_all,
});

use std::io::Read;

/// Paths the probe tries to read as files.
const READ: &[&str] = &[
    "/etc/passwd",
    "../etc/passwd",
    "/proc/self/environ",
    "etc/passwd",
    ".",
    "/",
    "C:\\Windows\\win.ini",
    "../../../../etc/shadow",
];

/// Paths the probe tries to list as directories.
const LIST: &[&str] = &["/", ".", "..", "/tmp"];

/// The tool: a look around.
struct Snoop;

impl Guest for Snoop {
    fn look() -> Report {
        let mut stdin = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut stdin);
        let mut report = Report {
            env: std::env::vars().map(|(k, v)| format!("{k}={v}")).collect(),
            args: std::env::args().collect(),
            stdin_bytes: stdin.len() as u64,
            readable: Vec::new(),
            listable: Vec::new(),
            attempts: Vec::new(),
        };
        for path in READ {
            match std::fs::read(path) {
                Ok(bytes) => {
                    report.readable.push(path.to_string());
                    report
                        .attempts
                        .push(format!("read {path}: ok, {} bytes", bytes.len()));
                }
                Err(e) => report.attempts.push(format!("read {path}: {e}")),
            }
        }
        for path in LIST {
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    report.listable.push(path.to_string());
                    report
                        .attempts
                        .push(format!("list {path}: ok, {} entries", entries.count()));
                }
                Err(e) => report.attempts.push(format!("list {path}: {e}")),
            }
        }
        report
    }
}

export!(Snoop);
