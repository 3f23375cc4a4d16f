//! Reading the host's own input files (components, `wit` sources, secret
//! files, compiled-cache entries): only regular files, under a size cap, so a
//! FIFO, a device such as `/dev/zero` or a huge file cannot hang the host or
//! exhaust its memory.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

/// Largest component file read (`run`, `inspect`, toolkits, MCP).
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Largest WIT source read for one `wit` path: each file, and all the files
/// of a directory (with its `deps/`) together.
pub const MAX_WIT_BYTES: u64 = 16 << 20;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A directory, FIFO, socket or device: reading it could block or never end.
    #[error("not a regular file (it is {kind}); point it at a regular file")]
    NotRegular {
        /// What it is instead ("a FIFO", "a character device", ...).
        kind: &'static str,
    },
    /// Larger than the cap for its kind of file.
    #[error("larger than {} (the cap for {what}); use a smaller file", crate::units::format_size(usize::try_from(*cap).unwrap_or(usize::MAX)))]
    TooLarge {
        /// The cap in bytes.
        cap: u64,
        /// The kind of file ("a component", "a secret file", ...).
        what: &'static str,
    },
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads the regular file at `path` (symbolic links followed), at most `cap`
/// bytes; `what` names the kind of file in the error ("a component").
///
/// The file is opened without blocking (a FIFO with no writer would block
/// `open`), then checked on the open descriptor, so what is read is what was
/// checked. The bytes of a refused oversize file are zeroized before they are
/// dropped (secret files use this too).
pub fn read_regular_file(path: &Path, cap: u64, what: &'static str) -> Result<Vec<u8>, FileError> {
    let fd = open_nonblocking(path, OFlags::empty())?;
    read_open(fd, cap, what)
}

/// Opens `path` read-only, close-on-exec and non-blocking, with `extra`
/// flags (such as `NOFOLLOW`).
pub(crate) fn open_nonblocking(path: &Path, extra: OFlags) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY | extra;
    Ok(rustix::fs::open(path, flags, Mode::empty())?)
}

/// Reads an open file after checking, on the descriptor, that it is a
/// regular file of at most `cap` bytes; reads at most `cap` bytes even if
/// it grows meanwhile.
pub(crate) fn read_open(fd: OwnedFd, cap: u64, what: &'static str) -> Result<Vec<u8>, FileError> {
    let stat = rustix::fs::fstat(&fd).map_err(std::io::Error::from)?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(FileError::NotRegular {
            kind: kind_name(kind),
        });
    }
    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
    if size > cap {
        return Err(FileError::TooLarge { cap, what });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    File::from(fd)
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        zeroize::Zeroize::zeroize(&mut bytes);
        return Err(FileError::TooLarge { cap, what });
    }
    Ok(bytes)
}

/// Checks every file `wit-parser`'s `Resolve::push_path` would read for the
/// `wit` path `path` — the file itself, or a directory's `*.wit` files and
/// its `deps/` (sub-directories' `*.wit`, and `*.wit`/`*.wat`/`*.wasm`
/// files) — before it reads them: each must be a regular file, and together
/// at most [`MAX_WIT_BYTES`].
pub fn check_wit_path(path: &Path) -> Result<(), (std::path::PathBuf, FileError)> {
    let mut total = 0u64;
    let mut check = |file: &Path| -> Result<(), (std::path::PathBuf, FileError)> {
        let fail = |e: FileError| (file.to_path_buf(), e);
        let fd = open_nonblocking(file, OFlags::empty()).map_err(|e| fail(e.into()))?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| fail(std::io::Error::from(e).into()))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        if kind != FileType::RegularFile {
            return Err(fail(FileError::NotRegular {
                kind: kind_name(kind),
            }));
        }
        total = total.saturating_add(u64::try_from(stat.st_size).unwrap_or(u64::MAX));
        if total > MAX_WIT_BYTES {
            return Err(fail(FileError::TooLarge {
                cap: MAX_WIT_BYTES,
                what: "the WIT sources of a tool",
            }));
        }
        Ok(())
    };
    if !path.is_dir() {
        return check(path);
    }
    let list = |dir: &Path, exts: &[&str]| -> std::io::Result<Vec<std::path::PathBuf>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let p = entry?.path();
            let wanted = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| exts.iter().any(|e| n.ends_with(&format!(".{e}"))));
            if wanted && !p.is_dir() {
                files.push(p);
            }
        }
        Ok(files)
    };
    fn io(p: &Path) -> impl FnOnce(std::io::Error) -> (std::path::PathBuf, FileError) + '_ {
        move |e| (p.to_path_buf(), FileError::Io(e))
    }
    for file in list(path, &["wit"]).map_err(io(path))? {
        check(&file)?;
    }
    let deps = path.join("deps");
    if deps.is_dir() {
        for entry in std::fs::read_dir(&deps).map_err(io(&deps))? {
            let dep = entry.map_err(io(&deps))?.path();
            if dep.is_dir() {
                for file in list(&dep, &["wit"]).map_err(io(&dep))? {
                    check(&file)?;
                }
            } else if dep
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["wit", "wat", "wasm"].contains(&e))
            {
                // wit-parser picks these by extension.
                check(&dep)?;
            }
        }
    }
    Ok(())
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "not a file",
    }
}

/// Makes a FIFO at `path` (the unit tests' attacker file).
#[cfg(test)]
pub(crate) fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[cfg(test)]
mod host_files {
    use super::*;

    #[test]
    fn a_regular_file_under_the_cap_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(
            read_regular_file(&f, 10, "a test file").unwrap(),
            b"0123456789"
        );
        match read_regular_file(&f, 9, "a test file") {
            Err(FileError::TooLarge { cap: 9, what }) => assert_eq!(what, "a test file"),
            other => panic!("a 10-byte file under a 9-byte cap: {other:?}"),
        }
    }

    #[test]
    fn a_fifo_a_device_and_a_directory_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        for (path, kind) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
        ] {
            match read_regular_file(path, MAX_COMPONENT_BYTES, "a component") {
                Err(FileError::NotRegular { kind: k }) => assert_eq!(k, kind),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
        let e = read_regular_file(&fifo, 1, "x").unwrap_err().to_string();
        assert_eq!(
            e,
            "not a regular file (it is a FIFO); point it at a regular file"
        );
    }

    #[test]
    fn a_component_must_be_a_regular_file_under_its_cap() {
        use crate::{Airlock, LoadError};
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("tool.wasm");
        mkfifo(&fifo);
        let huge = dir.path().join("huge.wasm");
        // Sparse: over the cap without taking the disk or memory.
        let f = std::fs::File::create(&huge).unwrap();
        f.set_len(MAX_COMPONENT_BYTES + 1).unwrap();
        for (path, kind) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
        ] {
            match Airlock::read_component(path) {
                Err(LoadError::Io {
                    path: p,
                    source: FileError::NotRegular { kind: k },
                }) => assert_eq!((p.as_path(), k), (path, kind)),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
        match Airlock::read_component(&huge) {
            Err(LoadError::Io {
                source: FileError::TooLarge { cap, what },
                ..
            }) => assert_eq!((cap, what), (MAX_COMPONENT_BYTES, "a component")),
            other => panic!("a component over the cap: {other:?}"),
        }
    }

    #[test]
    fn a_wit_directory_with_a_fifo_or_too_much_text_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wit"), "package a:b;\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        check_wit_path(dir.path()).expect("a plain WIT directory passes");

        let deps = dir.path().join("deps");
        std::fs::create_dir(&deps).unwrap();
        mkfifo(&deps.join("c.wasm"));
        match check_wit_path(dir.path()) {
            Err((p, FileError::NotRegular { kind: "a FIFO" })) => {
                assert_eq!(p, deps.join("c.wasm"))
            }
            other => panic!("a FIFO in deps/: {other:?}"),
        }
        std::fs::remove_file(deps.join("c.wasm")).unwrap();

        let big = std::fs::File::create(dir.path().join("big.wit")).unwrap();
        big.set_len(MAX_WIT_BYTES).unwrap();
        match check_wit_path(dir.path()) {
            Err((_, FileError::TooLarge { cap, .. })) => assert_eq!(cap, MAX_WIT_BYTES),
            other => panic!("more than the WIT cap in all: {other:?}"),
        }
    }
}
