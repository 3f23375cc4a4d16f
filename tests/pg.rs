//! A real PostgreSQL server for tests: `initdb` in a temp dir, `pg_ctl start`
//! on a free 127.0.0.1 port (as the `postgres` user when the tests run as
//! root, since PostgreSQL refuses root), stopped and removed on drop.
//!
//! Std only, so any test crate can use it: `airlock-tests` exports it as
//! `airlock_tests::pg`, other crates include the file with
//! `#[cfg(test)] #[path = "…/tests/pg.rs"] mod pg;` in their `lib.rs` (where
//! `cargo xtask walls` can follow the path). When the server binaries are missing,
//! [`Postgres::start`] returns `None` after printing why the test skips, or
//! panics when `CI` is set (`cargo xtask test` installs Debian's `postgresql`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One running PostgreSQL server, reachable at [`Postgres::url`] with user
/// `postgres` and no password (trust authentication, loopback only).
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
}

/// The newest `/usr/lib/postgresql/N/bin` holding `initdb` and `pg_ctl`.
fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Postgres {
    /// Starts a fresh server for `test`, or `None` (having said why) when
    /// PostgreSQL is not installed and `CI` is not set.
    pub fn start(test: &str) -> Option<Postgres> {
        let Some(bin) = find_bin() else {
            let how = "PostgreSQL is not installed (no /usr/lib/postgresql/N/bin/initdb): \
                       run `cargo xtask test`, which installs Debian's `postgresql`, or \
                       `apt-get install postgresql`";
            assert!(std::env::var_os("CI").is_none(), "{how}");
            eprintln!("skipping {test}: {how}");
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("airlock-pg-")
            .tempdir()
            .expect("a temp dir for PostgreSQL");
        if as_postgres {
            let out = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .output()
                .expect("chown runs");
            assert!(out.status.success(), "chown: {out:?}");
        }
        let pg = Postgres {
            dir,
            bin,
            as_postgres,
            port: free_port(),
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let options = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            path_str(pg.dir.path()),
            pg.port
        );
        let log = pg.dir.path().join("server.log");
        pg.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        Some(pg)
    }

    /// A tokio-postgres connection string for database `postgres`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// A tokio-postgres connection string for database `dbname` (which the
    /// test creates first).
    pub fn url_for(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            self.port
        )
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "{program} failed: {}\n{}\nserver log:\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", path_str(&data), "-m", "immediate", "-w", "stop"])
            .output();
    }
}
