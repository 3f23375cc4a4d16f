//! Distribution through a registry: a real `docker-registry` (CNCF distribution
//! 2.8, no referrers API) on a loopback port for push, pull, moved tags and the
//! fallback referrers index; a hostile registry for the `supply_chain` attacks.

mod common;

use airlock_trust::oci::{
    self, Auth, DSSE_MEDIA_TYPE, DistError, MAX_COMPONENT_BYTES, MAX_ENVELOPE_BYTES,
    OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE, Source, WASM_CONFIG_MEDIA_TYPE,
    WASM_LAYER_MEDIA_TYPE, referrers_tag, sha256_digest,
};
use common::{Registry, approval, artifact, http_get};
use serde_json::Value;

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

#[tokio::test]
async fn push_then_pull_by_tag_and_by_digest() {
    let Some(reg) = Registry::start() else { return };
    let a = artifact("one");
    let r = reg.tool("team/summarize:1.4.2");
    let digest = oci::push(&r, &a, &Auth::Anonymous).await.unwrap();

    let by_tag = oci::pull(&r, &Auth::Anonymous).await.unwrap();
    assert_eq!(by_tag.artifact, a);
    assert_eq!(by_tag.manifest_digest, digest);
    assert_eq!(by_tag.component_digest, sha256_digest(&a.component));
    assert_eq!(by_tag.statement_digest, sha256_digest(&a.statement));

    let pinned = reg.tool(&format!("team/summarize@{digest}"));
    assert_eq!(oci::pull(&pinned, &Auth::Anonymous).await.unwrap(), by_tag);
    let both = reg.tool(&format!("team/summarize:1.4.2@{digest}"));
    assert_eq!(oci::pull(&both, &Auth::Anonymous).await.unwrap(), by_tag);

    // The registry holds the CNCF Wasm layout: other Wasm tooling reads layer 0.
    let (status, body) = http_get(reg.addr, "/v2/team/summarize/manifests/1.4.2");
    assert_eq!(status, 200);
    assert_eq!(sha256_digest(&body), digest);
    let m = json(&body);
    assert_eq!(m["mediaType"], OCI_MANIFEST_MEDIA_TYPE);
    assert_eq!(m["config"]["mediaType"], WASM_CONFIG_MEDIA_TYPE);
    assert_eq!(m["layers"][0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
    assert_eq!(m["layers"][0]["digest"], by_tag.component_digest);
    assert_eq!(m["layers"][1]["mediaType"], DSSE_MEDIA_TYPE);
    let config_path = format!(
        "/v2/team/summarize/blobs/{}",
        m["config"]["digest"].as_str().unwrap()
    );
    let config = json(&http_get(reg.addr, &config_path).1);
    assert_eq!(
        (config["architecture"].as_str(), config["os"].as_str()),
        (Some("wasm"), Some("wasip2"))
    );
    assert_eq!(config["layerDigests"][0], by_tag.component_digest);
    assert_eq!(config["layerDigests"][1], by_tag.statement_digest);

    // Pushing the same artifact again is reproducible: the same manifest digest.
    assert_eq!(oci::push(&r, &a, &Auth::Anonymous).await.unwrap(), digest);
}

#[tokio::test]
async fn a_moved_tag_serves_the_new_content_and_the_old_digest_the_old() {
    let Some(reg) = Registry::start() else { return };
    let r = reg.tool("team/tool:1.0.0");
    let (old, new) = (artifact("old"), artifact("new"));
    let old_digest = oci::push(&r, &old, &Auth::Anonymous).await.unwrap();
    let new_digest = oci::push(&r, &new, &Auth::Anonymous).await.unwrap();
    assert_ne!(old_digest, new_digest);

    let by_tag = oci::pull(&r, &Auth::Anonymous).await.unwrap();
    assert_eq!((by_tag.artifact, by_tag.manifest_digest), (new, new_digest));
    let pinned = reg.tool(&format!("team/tool@{old_digest}"));
    let by_old = oci::pull(&pinned, &Auth::Anonymous).await.unwrap();
    assert_eq!((by_old.artifact, by_old.manifest_digest), (old, old_digest));
}

#[tokio::test]
async fn approvals_travel_as_referrers_through_the_fallback_index() {
    let Some(reg) = Registry::start() else { return };
    let r = reg.tool("sec/tool:2.0.0");
    let digest = oci::push(&r, &artifact("approved"), &Auth::Anonymous)
        .await
        .unwrap();
    // Another version of the same repository gets none of these approvals.
    let other = reg.tool("sec/tool:2.0.1");
    oci::push(&other, &artifact("other"), &Auth::Anonymous)
        .await
        .unwrap();

    let (a1, a2) = (approval("alice"), approval("bob"));
    let m1 = oci::push_approval(&r, &a1, &Auth::Anonymous).await.unwrap();
    let m2 = oci::push_approval(&r, &a2, &Auth::Anonymous).await.unwrap();
    // Pushing the same approval again does not list it twice.
    assert_eq!(
        oci::push_approval(&r, &a1, &Auth::Anonymous).await.unwrap(),
        m1
    );

    let pulled = oci::pull(&r, &Auth::Anonymous).await.unwrap();
    assert_eq!(pulled.artifact.approvals, vec![a1.clone(), a2.clone()]);
    assert!(
        oci::pull(&other, &Auth::Anonymous)
            .await
            .unwrap()
            .artifact
            .approvals
            .is_empty()
    );

    // Distribution 2.8 has no referrers API: the tag-schema index carries them.
    let api = format!("/v2/sec/tool/referrers/{digest}");
    assert_eq!(http_get(reg.addr, &api).0, 404);
    let (status, body) = http_get(
        reg.addr,
        &format!("/v2/sec/tool/manifests/{}", referrers_tag(&digest)),
    );
    assert_eq!(status, 200);
    let index = json(&body);
    assert_eq!(index["mediaType"], OCI_INDEX_MEDIA_TYPE);
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [m1.as_str(), m2.as_str()]);
    let (_, approval_manifest) = http_get(reg.addr, &format!("/v2/sec/tool/manifests/{m1}"));
    assert_eq!(
        json(&approval_manifest)["subject"]["digest"],
        digest.as_str()
    );

    // Approvals given with the artifact are pushed as referrers too.
    let mut with = artifact("with");
    with.approvals = vec![a2.clone()];
    let r3 = reg.tool("sec/tool:3.0.0");
    oci::push(&r3, &with, &Auth::Anonymous).await.unwrap();
    assert_eq!(
        oci::pull(&r3, &Auth::Anonymous).await.unwrap().artifact,
        with
    );
}

#[tokio::test]
async fn pull_to_layout_keeps_every_byte_and_the_manifest_digest() {
    let Some(reg) = Registry::start() else { return };
    let mut a = artifact("mirrored");
    a.approvals = vec![approval("carol")];
    let r = reg.tool("team/mirror:1.0.0");
    let digest = oci::push(&r, &a, &Auth::Anonymous).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let pulled = oci::pull_to_layout(&r, &Auth::Anonymous, dir.path())
        .await
        .unwrap();
    assert_eq!(
        (&pulled.artifact, pulled.manifest_digest.as_str()),
        (&a, digest.as_str())
    );

    let source = Source::Layout {
        dir: dir.path().to_path_buf(),
        reference: format!("1.0.0@{digest}"),
    };
    assert_eq!(source.fetch().await.unwrap(), pulled);
    assert_eq!(Source::Registry(r).fetch().await.unwrap(), pulled);
}

#[tokio::test]
async fn a_5_mb_component_round_trips_byte_exact() {
    let Some(reg) = Registry::start() else { return };
    let mut a = artifact("large");
    a.component = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let r = reg.tool("team/large:1.0.0");
    let t = std::time::Instant::now();
    let digest = oci::push(&r, &a, &Auth::Anonymous).await.unwrap();
    let pushed = t.elapsed();
    let t = std::time::Instant::now();
    let pulled = oci::pull(&r, &Auth::Anonymous).await.unwrap();
    eprintln!("5 MB component: push {pushed:?}, pull {:?}", t.elapsed());
    assert_eq!((pulled.artifact, pulled.manifest_digest), (a, digest));
}

#[tokio::test]
async fn approvals_come_from_the_referrers_api_when_the_registry_has_one() {
    let h = common::Hostile::start();
    let mut a = artifact("api");
    a.approvals = vec![approval("alice"), approval("bob")];
    let dir = tempfile::tempdir().unwrap();
    let digest = oci::write_layout(dir.path(), "1.0.0", &a).unwrap();
    common::serve_layout(&h, "team/tool", dir.path());
    // Move the referrers index from the fallback tag to the referrers API.
    let fallback = format!("/v2/team/tool/manifests/{}", referrers_tag(&digest));
    let index = h.routes.lock().unwrap().remove(&fallback).unwrap();
    h.route(
        &format!("/v2/team/tool/referrers/{digest}"),
        OCI_INDEX_MEDIA_TYPE,
        &index.body,
    );
    let pulled = oci::pull(&h.tool("team/tool:1.0.0"), &Auth::Anonymous)
        .await
        .unwrap();
    assert_eq!(pulled.artifact, a);
}

#[test]
fn registry_credentials_never_show_in_debug() {
    let auth = Auth::Basic {
        username: "ci".into(),
        password: "hunter2-token".to_string().into(),
    };
    assert!(!format!("{auth:?}").contains("hunter2"), "{auth:?}");
}

mod supply_chain {
    use super::*;
    use common::Hostile;

    /// A genuine tool in a layout, served by the hostile registry as `team/tool`.
    fn genuine(h: &Hostile, a: &oci::Artifact) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let digest = oci::write_layout(dir.path(), "1.0.0", a).unwrap();
        common::serve_layout(h, "team/tool", dir.path());
        (dir, digest)
    }

    #[tokio::test]
    async fn a_registry_serving_other_bytes_for_a_blob_digest_is_refused() {
        let h = Hostile::start();
        let a = artifact("genuine");
        let (_dir, digest) = genuine(&h, &a);
        let r = h.tool("team/tool:1.0.0");
        // Served as published, it pulls: the refusal below is the swap's doing.
        assert_eq!(
            oci::pull(&r, &Auth::Anonymous)
                .await
                .unwrap()
                .manifest_digest,
            digest
        );

        let expected = sha256_digest(&a.component);
        let mut forged = a.component.clone();
        *forged.last_mut().unwrap() ^= 1;
        h.route(
            &format!("/v2/team/tool/blobs/{expected}"),
            "application/octet-stream",
            &forged,
        );
        crate::common::assert_forged_component(
            oci::pull(&r, &Auth::Anonymous).await,
            &expected,
            &forged,
        );
    }

    #[tokio::test]
    async fn a_manifest_other_than_the_pinned_digest_is_refused() {
        let h = Hostile::start();
        let (_dir, pinned) = genuine(&h, &artifact("genuine"));
        // The attacker answers the pinned digest with a consistent forged tool.
        let other = tempfile::tempdir().unwrap();
        let forged = oci::write_layout(other.path(), "1.0.0", &artifact("forged")).unwrap();
        common::serve_layout(&h, "team/tool", other.path());
        let forged_manifest =
            std::fs::read(other.path().join("blobs/sha256").join(&forged[7..])).unwrap();
        h.route(
            &format!("/v2/team/tool/manifests/{pinned}"),
            OCI_MANIFEST_MEDIA_TYPE,
            &forged_manifest,
        );

        for reference in [
            format!("team/tool@{pinned}"),
            format!("team/tool:1.0.0@{pinned}"),
        ] {
            match oci::pull(&h.tool(&reference), &Auth::Anonymous).await {
                Err(DistError::DigestMismatch {
                    what,
                    expected,
                    actual,
                }) => {
                    assert_eq!(what, "the manifest");
                    assert_eq!((expected, actual), (pinned.clone(), forged.clone()));
                }
                other => panic!("{reference}: expected DigestMismatch, got {other:?}"),
            }
        }
    }

    /// Serve the genuine manifest with one edit at `/manifests/1.0.0`.
    fn edited(h: &Hostile, dir: &std::path::Path, digest: &str, edit: impl FnOnce(&mut Value)) {
        let mut m = json(&std::fs::read(dir.join("blobs/sha256").join(&digest[7..])).unwrap());
        edit(&mut m);
        h.route(
            "/v2/team/tool/manifests/1.0.0",
            OCI_MANIFEST_MEDIA_TYPE,
            &serde_json::to_vec(&m).unwrap(),
        );
    }

    #[tokio::test]
    async fn an_oversized_descriptor_is_refused_before_any_download() {
        let h = Hostile::start();
        let (dir, digest) = genuine(&h, &artifact("big"));
        let r = h.tool("team/tool:1.0.0");
        // The blobs are not served at all: a refusal must come before fetching.
        h.routes
            .lock()
            .unwrap()
            .retain(|path, _| !path.contains("/blobs/"));
        for (layer, size, limit) in [
            (0, MAX_COMPONENT_BYTES + 1, MAX_COMPONENT_BYTES),
            (1, 64 << 20, MAX_ENVELOPE_BYTES),
        ] {
            edited(&h, dir.path(), &digest, |m| {
                m["layers"][layer]["size"] = size.into()
            });
            match oci::pull(&r, &Auth::Anonymous).await {
                Err(DistError::TooLarge {
                    size: s, limit: l, ..
                }) => assert_eq!((s, l), (size, limit)),
                other => panic!("layer {layer}: expected TooLarge, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_blob_longer_than_its_descriptor_is_cut_off() {
        let h = Hostile::start();
        let a = artifact("long");
        let (_dir, _) = genuine(&h, &a);
        let digest = sha256_digest(&a.component);
        let mut longer = a.component.clone();
        longer.extend(std::iter::repeat_n(0u8, 8 << 20));
        h.route(
            &format!("/v2/team/tool/blobs/{digest}"),
            "application/octet-stream",
            &longer,
        );
        match oci::pull(&h.tool("team/tool:1.0.0"), &Auth::Anonymous).await {
            Err(DistError::TooLarge { what, limit, .. }) => {
                assert_eq!(what, "the component layer (longer than its descriptor)");
                assert_eq!(limit, a.component.len() as u64);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_manifest_whose_layers_are_not_component_then_statement_is_refused() {
        let h = Hostile::start();
        let (dir, digest) = genuine(&h, &artifact("shape"));
        let r = h.tool("team/tool:1.0.0");
        type Edit = (&'static str, fn(&mut Value));
        let edits: [Edit; 3] = [
            ("swapped", |m| {
                m["layers"].as_array_mut().unwrap().swap(0, 1)
            }),
            ("three layers", |m| {
                let first = m["layers"][0].clone();
                m["layers"].as_array_mut().unwrap().push(first);
            }),
            ("other config", |m| {
                m["config"]["mediaType"] = "application/vnd.oci.image.config.v1+json".into()
            }),
        ];
        for (name, edit) in edits {
            edited(&h, dir.path(), &digest, edit);
            assert!(
                matches!(
                    oci::pull(&r, &Auth::Anonymous).await,
                    Err(DistError::UnexpectedManifest { .. })
                ),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn an_approval_naming_another_subject_is_refused() {
        let h = Hostile::start();
        let mut a = artifact("approved");
        a.approvals = vec![approval("alice")];
        let (_dir, digest) = genuine(&h, &a);
        // Another tool's approval, listed in this tool's referrers index.
        let other = tempfile::tempdir().unwrap();
        let mut b = artifact("other");
        b.approvals = vec![approval("mallory")];
        oci::write_layout(other.path(), "9.9.9", &b).unwrap();
        common::serve_layout(&h, "team/tool", other.path());
        let other_index = std::fs::read(other.path().join("index.json")).unwrap();
        let entry = json(&other_index)["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["mediaType"] == OCI_INDEX_MEDIA_TYPE)
            .cloned()
            .unwrap();
        let hex = &entry["digest"].as_str().unwrap()[7..];
        let index = std::fs::read(other.path().join("blobs/sha256").join(hex)).unwrap();
        h.route(
            &format!("/v2/team/tool/manifests/{}", referrers_tag(&digest)),
            OCI_INDEX_MEDIA_TYPE,
            &index,
        );
        match oci::pull(&h.tool("team/tool:1.0.0"), &Auth::Anonymous).await {
            Err(DistError::UnexpectedManifest { what, reason }) => {
                assert_eq!(what, "an approval manifest");
                assert!(reason.contains(&digest), "{reason}");
            }
            other => panic!("expected UnexpectedManifest, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_floating_tag_is_never_pushed() {
        let h = Hostile::start();
        let d = sha256_digest(b"x");
        let r = h.tool(&format!("team/tool:latest@{d}"));
        assert!(matches!(
            oci::push(&r, &artifact("x"), &Auth::Anonymous).await,
            Err(DistError::FloatingTag { .. })
        ));
        // A pin that does not match what would be pushed is refused too.
        let r = h.tool(&format!("team/tool:1.0.0@{d}"));
        assert!(matches!(
            oci::push(&r, &artifact("x"), &Auth::Anonymous).await,
            Err(DistError::DigestMismatch { .. })
        ));
    }
}
