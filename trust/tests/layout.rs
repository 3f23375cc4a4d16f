//! Distribution without a server: the OCI image-layout directory. Write, read by
//! tag and digest, moved tags, approvals as referrers; the `supply_chain`
//! attacks on a directory someone else can write (swapped, re-hashed, linked).

mod common;

use std::path::Path;

use airlock_trust::oci::{
    self, DistError, OCI_INDEX_MEDIA_TYPE, REF_NAME_ANNOTATION, Source, WASM_LAYER_MEDIA_TYPE,
    referrers_tag, sha256_digest,
};
use common::{approval, artifact};
use serde_json::Value;

fn index(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
}

fn tags(dir: &Path) -> Vec<(String, String)> {
    let mut tags: Vec<_> = index(dir)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| {
            let tag = d["annotations"][REF_NAME_ANNOTATION].as_str()?;
            Some((tag.to_string(), d["digest"].as_str()?.to_string()))
        })
        .collect();
    tags.sort();
    tags
}

fn blob(dir: &Path, digest: &str) -> std::path::PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

#[test]
fn write_then_read_by_tag_and_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    let a = artifact("layout");
    let digest = oci::write_layout(dir.path(), "1.0.0", &a).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let pulled = oci::read_layout(dir.path(), "1.0.0").unwrap();
    assert_eq!(pulled.artifact, a);
    assert_eq!(pulled.manifest_digest, digest);
    assert_eq!(pulled.component_digest, sha256_digest(&a.component));
    assert_eq!(oci::read_layout(dir.path(), &digest).unwrap(), pulled);
    assert_eq!(
        oci::read_layout(dir.path(), &format!("1.0.0@{digest}")).unwrap(),
        pulled
    );
    let m: Value =
        serde_json::from_slice(&std::fs::read(blob(dir.path(), &digest)).unwrap()).unwrap();
    assert_eq!(m["layers"][0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
    // Every blob is named by its hash.
    for entry in std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let hex = entry.file_name().into_string().unwrap();
        assert_eq!(
            sha256_digest(&std::fs::read(entry.path()).unwrap()),
            format!("sha256:{hex}")
        );
    }

    for floating in ["latest", "1", "1.4"] {
        assert!(matches!(
            oci::write_layout(dir.path(), floating, &a),
            Err(DistError::FloatingTag { .. })
        ));
        assert!(matches!(
            oci::read_layout(dir.path(), floating),
            Err(DistError::FloatingTag { .. })
        ));
    }
    assert!(matches!(
        oci::read_layout(dir.path(), "2.0.0"),
        Err(DistError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_moved_tag_keeps_the_other_tags_and_the_old_digest() {
    let dir = tempfile::tempdir().unwrap();
    let (old, other, new) = (artifact("old"), artifact("other"), artifact("new"));
    let old_digest = oci::write_layout(dir.path(), "1.0.0", &old).unwrap();
    let other_digest = oci::write_layout(dir.path(), "2.0.0", &other).unwrap();
    let new_digest = oci::write_layout(dir.path(), "1.0.0", &new).unwrap();
    assert_eq!(
        tags(dir.path()),
        [
            ("1.0.0".to_string(), new_digest.clone()),
            ("2.0.0".to_string(), other_digest)
        ]
    );
    assert_eq!(oci::read_layout(dir.path(), "1.0.0").unwrap().artifact, new);
    assert_eq!(
        oci::read_layout(dir.path(), "2.0.0").unwrap().artifact,
        other
    );
    let source = Source::Layout {
        dir: dir.path().to_path_buf(),
        reference: old_digest,
    };
    assert_eq!(source.fetch().await.unwrap().artifact, old);
}

#[test]
fn approvals_are_referrers_in_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = artifact("approved");
    a.approvals = vec![approval("alice")];
    let digest = oci::write_layout(dir.path(), "1.0.0", &a).unwrap();
    oci::add_approval_to_layout(dir.path(), &digest, &approval("bob")).unwrap();
    // The same approval twice is listed once.
    oci::add_approval_to_layout(dir.path(), &digest, &approval("bob")).unwrap();
    let pulled = oci::read_layout(dir.path(), "1.0.0").unwrap();
    assert_eq!(
        pulled.artifact.approvals,
        vec![approval("alice"), approval("bob")]
    );

    let tags = tags(dir.path());
    let (_, index_digest) = tags
        .iter()
        .find(|(t, _)| *t == referrers_tag(&digest))
        .unwrap();
    let referrers: Value =
        serde_json::from_slice(&std::fs::read(blob(dir.path(), index_digest)).unwrap()).unwrap();
    assert_eq!(referrers["mediaType"], OCI_INDEX_MEDIA_TYPE);
    assert_eq!(referrers["manifests"].as_array().unwrap().len(), 2);

    // Rewriting the tool keeps its approvals; another tool has none.
    a.approvals.clear();
    oci::write_layout(dir.path(), "1.0.0", &a).unwrap();
    assert_eq!(
        oci::read_layout(dir.path(), "1.0.0")
            .unwrap()
            .artifact
            .approvals
            .len(),
        2
    );
    oci::write_layout(dir.path(), "1.0.1", &artifact("unapproved")).unwrap();
    assert!(
        oci::read_layout(dir.path(), "1.0.1")
            .unwrap()
            .artifact
            .approvals
            .is_empty()
    );
    // An approval needs a tool to approve.
    let missing = sha256_digest(b"no such tool");
    assert!(matches!(
        oci::add_approval_to_layout(dir.path(), &missing, &approval("eve")),
        Err(DistError::NotFound { .. })
    ));
}

mod supply_chain {
    use super::*;

    #[test]
    fn a_replaced_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = artifact("genuine");
        oci::write_layout(dir.path(), "1.0.0", &a).unwrap();
        let expected = sha256_digest(&a.component);
        let mut forged = a.component.clone();
        *forged.last_mut().unwrap() ^= 1;
        std::fs::write(blob(dir.path(), &expected), &forged).unwrap();
        crate::common::assert_forged_component(
            oci::read_layout(dir.path(), "1.0.0"),
            &expected,
            &forged,
        );
    }

    #[test]
    fn a_forged_tool_under_its_own_hashes_is_refused_by_the_pinned_digest() {
        let dir = tempfile::tempdir().unwrap();
        let pinned = oci::write_layout(dir.path(), "1.0.0", &artifact("genuine")).unwrap();
        // The strongest attacker writes a whole consistent tool (every blob
        // under its correct hash, a new manifest, the tag moved to it).
        let forged = artifact("forged");
        let forged_digest = oci::write_layout(dir.path(), "1.0.0", &forged).unwrap();
        // Unpinned, nothing here can tell (the signature check must): the
        // attack is real, which is why toolkits pin.
        assert_eq!(
            oci::read_layout(dir.path(), "1.0.0").unwrap().artifact,
            forged
        );
        match oci::read_layout(dir.path(), &format!("1.0.0@{pinned}")) {
            Err(DistError::DigestMismatch {
                what,
                expected,
                actual,
            }) => {
                assert_eq!(what, "the manifest tagged 1.0.0 in the layout");
                assert_eq!((expected, actual), (pinned.clone(), forged_digest.clone()));
            }
            other => panic!("expected DigestMismatch, got {other:?}"),
        }
        // It then puts the forged manifest under the pinned name as well.
        std::fs::copy(blob(dir.path(), &forged_digest), blob(dir.path(), &pinned)).unwrap();
        for reference in [pinned.clone(), format!("1.0.0@{pinned}")] {
            match oci::read_layout(dir.path(), &reference) {
                Err(DistError::DigestMismatch {
                    expected, actual, ..
                }) => {
                    assert_eq!((expected, actual), (pinned.clone(), forged_digest.clone()));
                }
                other => panic!("{reference}: expected DigestMismatch, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_symlinked_blob_or_blob_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = artifact("linked");
        oci::write_layout(dir.path(), "1.0.0", &a).unwrap();
        // The link points at the very same bytes: only the link is wrong.
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("component.wasm");
        std::fs::write(&target, &a.component).unwrap();
        let path = blob(dir.path(), &sha256_digest(&a.component));
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        match oci::read_layout(dir.path(), "1.0.0") {
            Err(DistError::UnsafePath { path: p, reason }) => {
                assert_eq!((p, reason.as_str()), (path.clone(), "it is a symlink"));
            }
            other => panic!("expected UnsafePath, got {other:?}"),
        }

        // The whole blob directory swapped for a link to a copy.
        let copy = tempfile::tempdir().unwrap();
        oci::write_layout(copy.path(), "1.0.0", &a).unwrap();
        let blobs = dir.path().join("blobs/sha256");
        std::fs::remove_dir_all(&blobs).unwrap();
        std::os::unix::fs::symlink(copy.path().join("blobs/sha256"), &blobs).unwrap();
        assert!(matches!(
            oci::read_layout(dir.path(), "1.0.0"),
            Err(DistError::UnsafePath { path, .. }) if path == blobs
        ));
    }

    #[test]
    fn a_fifo_in_place_of_a_blob_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let a = artifact("fifo");
        oci::write_layout(dir.path(), "1.0.0", &a).unwrap();
        let path = blob(dir.path(), &sha256_digest(&a.statement));
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        match oci::read_layout(dir.path(), "1.0.0") {
            Err(DistError::UnsafePath { reason, .. }) => {
                assert_eq!(reason, "it is not a regular file")
            }
            other => panic!("expected UnsafePath, got {other:?}"),
        }
    }

    #[test]
    fn an_index_naming_a_path_outside_blobs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        oci::write_layout(dir.path(), "1.0.0", &artifact("escape")).unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"not a blob").unwrap();
        let mut idx = index(dir.path());
        idx["manifests"][0]["digest"] = "sha256:../../../secret".into();
        std::fs::write(
            dir.path().join("index.json"),
            serde_json::to_vec(&idx).unwrap(),
        )
        .unwrap();
        match oci::read_layout(dir.path(), "1.0.0") {
            Err(DistError::InvalidDigest { digest }) => {
                assert_eq!(digest, "sha256:../../../secret")
            }
            other => panic!("expected InvalidDigest, got {other:?}"),
        }
        assert!(matches!(
            oci::read_layout(dir.path(), "sha256:../../../secret"),
            Err(DistError::InvalidDigest { .. })
        ));
    }

    #[test]
    fn a_blob_larger_than_its_descriptor_is_refused_before_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let a = artifact("grown");
        oci::write_layout(dir.path(), "1.0.0", &a).unwrap();
        let path = blob(dir.path(), &sha256_digest(&a.component));
        let mut grown = a.component.clone();
        grown.extend(std::iter::repeat_n(0u8, 1 << 20));
        std::fs::write(&path, &grown).unwrap();
        match oci::read_layout(dir.path(), "1.0.0") {
            Err(DistError::TooLarge { size, limit, .. }) => {
                assert_eq!(
                    (size, limit),
                    (grown.len() as u64, a.component.len() as u64)
                );
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
}
