//! The same tool as an OCI image-layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`): no server, for air-gapped machines and file servers.
//! Tags live in `index.json`; approvals use the referrers tag schema, as in a
//! registry. Every blob is re-hashed on read; symlinks and odd files are refused.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::manifest::{
    self, APPROVAL_ARTIFACT_TYPE, Descriptor, EMPTY_CONFIG, ImageIndex, MAX_APPROVALS,
    MAX_COMPONENT_BYTES, MAX_CONFIG_BYTES, MAX_ENVELOPE_BYTES, MAX_MANIFEST_BYTES,
    OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE, REF_NAME_ANNOTATION, Stored, check_digest,
    check_hash, referrers_tag,
};
use super::{Artifact, DistError, Pulled, is_exact_version};

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Write `artifact` into the layout at `dir` (created when missing) under the
/// exact version `tag`, moving the tag if it named other content and keeping
/// every other tag; approvals become referrers. Returns the manifest digest.
pub fn write_layout(dir: &Path, tag: &str, artifact: &Artifact) -> Result<String, DistError> {
    if !is_exact_version(tag) {
        return Err(DistError::FloatingTag {
            reference: tag.to_string(),
        });
    }
    store(dir, Some(tag), &manifest::encode(artifact)?)
}

/// Add one approval (a DSSE envelope) as a referrer of the tool whose manifest
/// digest is `subject_digest`; returns the approval manifest's digest.
pub fn add_approval_to_layout(
    dir: &Path,
    subject_digest: &str,
    approval: &[u8],
) -> Result<String, DistError> {
    let subject = read_blob(dir, "the tool manifest", subject_digest, MAX_MANIFEST_BYTES)?;
    manifest::parse_tool(&subject)?;
    let approval_manifest =
        manifest::encode_approval(&Descriptor::of(OCI_MANIFEST_MEDIA_TYPE, &subject), approval)?;
    let mut index = read_index(dir)?;
    write_blob(dir, EMPTY_CONFIG)?;
    write_blob(dir, approval)?;
    add_referrers(dir, &mut index, subject_digest, &[&approval_manifest])?;
    write_index(dir, &index)?;
    Ok(manifest::sha256_digest(&approval_manifest))
}

/// Read the tool named by `reference` (an exact version tag, `sha256:…`, or
/// `TAG@sha256:…`) with its approvals, every blob re-hashed against its name.
pub fn read_layout(dir: &Path, reference: &str) -> Result<Pulled, DistError> {
    Ok(load(dir, reference)?.pulled())
}

/// Store every document and blob of a tool byte-exact, tag it (when `tag` is
/// given) and merge its approvals into the referrers index.
pub(crate) fn store(dir: &Path, tag: Option<&str>, s: &Stored) -> Result<String, DistError> {
    std::fs::create_dir_all(blobs_dir(dir)).map_err(io(&blobs_dir(dir)))?;
    let mut index = read_index(dir)?;
    write_file(&dir.join("oci-layout"), OCI_LAYOUT)?;
    for blob in [&s.config, &s.component, &s.statement, &s.manifest] {
        write_blob(dir, blob)?;
    }
    let digest = s.manifest_digest();
    let mut entry = s.subject();
    match tag {
        Some(tag) => {
            index.manifests.retain(|d| ref_name(d) != Some(tag));
            entry.annotations = Some([(REF_NAME_ANNOTATION.to_string(), tag.to_string())].into());
            index.manifests.push(entry);
        }
        None if !index.manifests.iter().any(|d| d.digest == digest) => index.manifests.push(entry),
        None => {}
    }
    for (_, envelope) in &s.approvals {
        write_blob(dir, EMPTY_CONFIG)?;
        write_blob(dir, envelope)?;
    }
    let approvals: Vec<&[u8]> = s.approvals.iter().map(|(m, _)| m.as_slice()).collect();
    if !approvals.is_empty() {
        add_referrers(dir, &mut index, &digest, &approvals)?;
    }
    write_index(dir, &index)?;
    Ok(digest)
}

/// Load a tool by tag, digest or both, with its approvals.
pub(crate) fn load(dir: &Path, reference: &str) -> Result<Stored, DistError> {
    let (tag, pinned) = match reference.split_once('@') {
        Some((t, d)) => (Some(t), Some(d)),
        None if reference.starts_with("sha256:") => (None, Some(reference)),
        None => (Some(reference), None),
    };
    if let Some(d) = pinned {
        check_digest(d)?;
    } else if !tag.is_some_and(is_exact_version) {
        return Err(DistError::FloatingTag {
            reference: reference.to_string(),
        });
    }
    let index = read_index(dir)?;
    let digest = match tag {
        Some(tag) => {
            let entry = index
                .manifests
                .iter()
                .find(|d| ref_name(d) == Some(tag))
                .ok_or_else(|| DistError::NotFound {
                    what: format!("tag {tag} in the layout {}", dir.display()),
                })?;
            if let Some(pinned) = pinned
                && pinned != entry.digest
            {
                return Err(DistError::DigestMismatch {
                    what: format!("the manifest tagged {tag} in the layout"),
                    expected: pinned.to_string(),
                    actual: entry.digest.clone(),
                });
            }
            entry.digest.clone()
        }
        None => pinned.unwrap_or_default().to_string(),
    };
    let manifest = read_blob(dir, "the tool manifest", &digest, MAX_MANIFEST_BYTES)?;
    let [config, component, statement] = manifest::parse_tool(&manifest)?;
    let mut stored = Stored {
        config: read_described(dir, "the config", &config, MAX_CONFIG_BYTES)?,
        component: read_described(dir, "the component layer", &component, MAX_COMPONENT_BYTES)?,
        statement: read_described(dir, "the statement layer", &statement, MAX_ENVELOPE_BYTES)?,
        manifest,
        approvals: Vec::new(),
    };
    let referrers = index
        .manifests
        .iter()
        .find(|d| ref_name(d) == Some(referrers_tag(&digest).as_str()));
    if let Some(entry) = referrers {
        let bytes = read_blob(
            dir,
            "the referrers index",
            &entry.digest,
            MAX_MANIFEST_BYTES,
        )?;
        let approvals: Vec<Descriptor> = manifest::parse_index("the referrers index", &bytes)?
            .manifests
            .into_iter()
            .filter(|d| d.artifact_type.as_deref() == Some(APPROVAL_ARTIFACT_TYPE))
            .collect();
        if approvals.len() > MAX_APPROVALS {
            return Err(DistError::TooLarge {
                what: "the approval list".into(),
                size: approvals.len() as u64,
                limit: MAX_APPROVALS as u64,
            });
        }
        for d in approvals {
            let m = read_blob(dir, "an approval manifest", &d.digest, MAX_MANIFEST_BYTES)?;
            let layer = manifest::parse_approval(&m, &digest)?;
            let envelope = read_described(dir, "an approval", &layer, MAX_ENVELOPE_BYTES)?;
            stored.approvals.push((m, envelope));
        }
    }
    Ok(stored)
}

/// Add approval manifests (written as blobs here) to the subject's referrers index.
fn add_referrers(
    dir: &Path,
    index: &mut ImageIndex,
    subject_digest: &str,
    approval_manifests: &[&[u8]],
) -> Result<(), DistError> {
    let tag = referrers_tag(subject_digest);
    let existing = match index.manifests.iter().find(|d| ref_name(d) == Some(&tag)) {
        Some(d) => Some(read_blob(
            dir,
            "the referrers index",
            &d.digest,
            MAX_MANIFEST_BYTES,
        )?),
        None => None,
    };
    let mut referrers = existing;
    for m in approval_manifests {
        write_blob(dir, m)?;
        referrers = Some(manifest::add_referrer(referrers.as_deref(), m)?);
    }
    let referrers = referrers.unwrap_or_default();
    write_blob(dir, &referrers)?;
    let mut entry = Descriptor::of(OCI_INDEX_MEDIA_TYPE, &referrers);
    entry.annotations = Some([(REF_NAME_ANNOTATION.to_string(), tag.clone())].into());
    index.manifests.retain(|d| ref_name(d) != Some(&tag));
    index.manifests.push(entry);
    Ok(())
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations
        .as_ref()?
        .get(REF_NAME_ANNOTATION)
        .map(String::as_str)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DistError + '_ {
    move |source| DistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn blobs_dir(dir: &Path) -> PathBuf {
    dir.join("blobs").join("sha256")
}

/// `blobs/` and `blobs/sha256/` must be real directories, not symlinks out.
fn check_blobs_dirs(dir: &Path) -> Result<(), DistError> {
    for d in [dir.join("blobs"), blobs_dir(dir)] {
        match std::fs::symlink_metadata(&d) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(DistError::UnsafePath {
                    path: d,
                    reason: "it is not a directory (a symlink could lead out of the layout)".into(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DistError::NotFound {
                    what: format!("{} (no OCI layout here)", d.display()),
                });
            }
            Err(e) => return Err(io(&d)(e)),
        }
    }
    Ok(())
}

/// Read a regular file (never through a symlink, never a FIFO) of at most `limit` bytes.
fn read_file(what: &str, path: &Path, limit: u64) -> Result<Vec<u8>, DistError> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::LOOP => DistError::UnsafePath {
            path: path.to_path_buf(),
            reason: "it is a symlink".into(),
        },
        rustix::io::Errno::NOENT => DistError::NotFound {
            what: format!("{what} ({})", path.display()),
        },
        e => io(path)(e.into()),
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(io(path))?;
    if !meta.file_type().is_file() {
        return Err(DistError::UnsafePath {
            path: path.to_path_buf(),
            reason: "it is not a regular file".into(),
        });
    }
    if meta.len() > limit {
        return Err(DistError::TooLarge {
            what: what.to_string(),
            size: meta.len(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > limit {
        return Err(DistError::TooLarge {
            what: what.to_string(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Read the blob named `digest` and check that its bytes hash to that name.
fn read_blob(dir: &Path, what: &str, digest: &str, limit: u64) -> Result<Vec<u8>, DistError> {
    let hex = check_digest(digest)?;
    check_blobs_dirs(dir)?;
    let bytes = read_file(what, &blobs_dir(dir).join(hex), limit)?;
    check_hash(what, digest, &bytes)?;
    Ok(bytes)
}

/// Read the blob a descriptor names: its digest and its size both checked.
fn read_described(
    dir: &Path,
    what: &str,
    d: &Descriptor,
    limit: u64,
) -> Result<Vec<u8>, DistError> {
    let bytes = read_blob(dir, what, &d.digest, limit.min(d.size))?;
    manifest::check_blob(what, d, &bytes)?;
    Ok(bytes)
}

fn read_index(dir: &Path) -> Result<ImageIndex, DistError> {
    let path = dir.join("index.json");
    match read_file("index.json", &path, MAX_MANIFEST_BYTES) {
        Ok(bytes) => manifest::parse_index("index.json", &bytes),
        Err(DistError::NotFound { .. }) => Ok(ImageIndex::empty()),
        Err(e) => Err(e),
    }
}

fn write_index(dir: &Path, index: &ImageIndex) -> Result<(), DistError> {
    let bytes = serde_json::to_vec(index).expect("an index always serializes");
    write_file(&dir.join("index.json"), &bytes)
}

fn write_blob(dir: &Path, bytes: &[u8]) -> Result<(), DistError> {
    check_blobs_dirs(dir)?;
    let digest = manifest::sha256_digest(bytes);
    let hex = check_digest(&digest)?;
    write_file(&blobs_dir(dir).join(hex), bytes)
}

/// Write through a temporary file and rename, so a reader never sees half a file
/// and a symlink planted at `path` is replaced, not followed.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DistError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}
