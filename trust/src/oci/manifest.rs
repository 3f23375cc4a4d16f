//! The documents of the CNCF Wasm OCI artifact as airlock writes and checks
//! them: media types and caps, the tool manifest (component first, statement
//! second), approval referrers and the referrers index; digests and blob checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Artifact, DistError};

/// OCI image manifest v1: the tool and each approval.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index v1: the referrers index (and a layout's `index.json`).
pub const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The CNCF Wasm config (`created`, `architecture: wasm`, `os: wasip2`, layer digests).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The component: the tool manifest's first layer, so other Wasm tooling reads it.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The signed statement (second layer) and each approval (its one layer).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The `artifactType` of an approval referrer.
pub const APPROVAL_ARTIFACT_TYPE: &str = "application/vnd.airlock.approval.v1+json";
/// The OCI empty descriptor's media type: an approval's config (`{}`).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The annotation that names a tag in a layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Largest component accepted.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;
/// Largest statement or approval envelope accepted.
pub const MAX_ENVELOPE_BYTES: u64 = 1 << 20;
/// Largest config blob accepted.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest manifest or index accepted (what the OCI spec asks registries to take).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Most approvals read for one tool.
pub const MAX_APPROVALS: usize = 64;

/// The bytes of the OCI empty descriptor, `{}`.
pub(crate) const EMPTY_CONFIG: &[u8] = b"{}";
/// Fixed, so the same artifact always has the same manifest digest, in a
/// registry and in a layout (reproducible; a pin carries between them).
const CREATED: &str = "1970-01-01T00:00:00Z";

/// `sha256:` and the lower-case hex SHA-256 of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The fallback referrers tag of a subject: `sha256:abc…` → `sha256-abc…`.
pub fn referrers_tag(subject_digest: &str) -> String {
    subject_digest.replacen(':', "-", 1)
}

/// Check a `sha256:<64 lower-case hex>` digest; return the hex part (safe as a file name).
pub(crate) fn check_digest(digest: &str) -> Result<&str, DistError> {
    let hex = digest.strip_prefix("sha256:").filter(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    hex.ok_or_else(|| DistError::InvalidDigest {
        digest: digest.to_string(),
    })
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    pub(crate) fn of(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: None,
        }
    }
}

/// An OCI image manifest (tool or approval).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageManifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
}

/// An OCI image index (referrers index, layout `index.json`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageIndex {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

impl ImageIndex {
    pub(crate) fn empty() -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(OCI_INDEX_MEDIA_TYPE.to_string()),
            manifests: Vec::new(),
        }
    }
}

/// Every document and blob of a tool, as stored (byte-exact, so a copy keeps
/// its digests).
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    pub component: Vec<u8>,
    pub statement: Vec<u8>,
    /// Each approval: its manifest and its envelope.
    pub approvals: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Stored {
    pub(crate) fn manifest_digest(&self) -> String {
        sha256_digest(&self.manifest)
    }

    /// The descriptor a referrer's `subject` names.
    pub(crate) fn subject(&self) -> Descriptor {
        Descriptor::of(OCI_MANIFEST_MEDIA_TYPE, &self.manifest)
    }

    pub(crate) fn pulled(self) -> super::Pulled {
        super::Pulled {
            manifest_digest: sha256_digest(&self.manifest),
            component_digest: sha256_digest(&self.component),
            statement_digest: sha256_digest(&self.statement),
            artifact: Artifact {
                component: self.component,
                statement: self.statement,
                approvals: self.approvals.into_iter().map(|(_, e)| e).collect(),
            },
        }
    }
}

fn cap(what: &str, len: usize, limit: u64) -> Result<(), DistError> {
    if len as u64 > limit {
        return Err(DistError::TooLarge {
            what: what.to_string(),
            size: len as u64,
            limit,
        });
    }
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("OCI documents always serialize")
}

/// Encode an artifact: the config, the tool manifest and one referrer per approval.
pub(crate) fn encode(a: &Artifact) -> Result<Stored, DistError> {
    cap("the component", a.component.len(), MAX_COMPONENT_BYTES)?;
    cap("the statement", a.statement.len(), MAX_ENVELOPE_BYTES)?;
    if a.approvals.len() > MAX_APPROVALS {
        return Err(DistError::TooLarge {
            what: "the approval list".into(),
            size: a.approvals.len() as u64,
            limit: MAX_APPROVALS as u64,
        });
    }
    let layers = vec![
        Descriptor::of(WASM_LAYER_MEDIA_TYPE, &a.component),
        Descriptor::of(DSSE_MEDIA_TYPE, &a.statement),
    ];
    let mut config = serde_json::json!({
        "created": CREATED,
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(),
    });
    if let Some(world) = component_world(&a.component) {
        config["component"] = world;
    }
    let config = to_json(&config);
    let manifest = to_json(&ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST_MEDIA_TYPE.to_string()),
        artifact_type: None,
        config: Descriptor::of(WASM_CONFIG_MEDIA_TYPE, &config),
        layers,
        subject: None,
    });
    let mut stored = Stored {
        manifest,
        config,
        component: a.component.clone(),
        statement: a.statement.clone(),
        approvals: Vec::new(),
    };
    let subject = stored.subject();
    for envelope in &a.approvals {
        stored
            .approvals
            .push((encode_approval(&subject, envelope)?, envelope.clone()));
    }
    Ok(stored)
}

/// The manifest of an approval referrer: empty config, the envelope as its one layer.
pub(crate) fn encode_approval(subject: &Descriptor, envelope: &[u8]) -> Result<Vec<u8>, DistError> {
    cap("an approval", envelope.len(), MAX_ENVELOPE_BYTES)?;
    Ok(to_json(&ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST_MEDIA_TYPE.to_string()),
        artifact_type: Some(APPROVAL_ARTIFACT_TYPE.to_string()),
        config: Descriptor::of(EMPTY_MEDIA_TYPE, EMPTY_CONFIG),
        layers: vec![Descriptor::of(DSSE_MEDIA_TYPE, envelope)],
        subject: Some(subject.clone()),
    }))
}

/// Add one referrer to an existing referrers index (or start one), keeping the rest.
pub(crate) fn add_referrer(
    existing: Option<&[u8]>,
    approval_manifest: &[u8],
) -> Result<Vec<u8>, DistError> {
    let mut index = match existing {
        Some(bytes) => parse_index("the referrers index", bytes)?,
        None => ImageIndex::empty(),
    };
    let mut d = Descriptor::of(OCI_MANIFEST_MEDIA_TYPE, approval_manifest);
    d.artifact_type = Some(APPROVAL_ARTIFACT_TYPE.to_string());
    if !index.manifests.iter().any(|e| e.digest == d.digest) {
        index.manifests.push(d);
    }
    Ok(to_json(&index))
}

/// The component's top-level imports and exports, as the Wasm config lists
/// them; none when the bytes are not a component (the config stays valid).
fn component_world(bytes: &[u8]) -> Option<serde_json::Value> {
    use wasmparser::{Encoding, Parser, Payload};
    let (mut imports, mut exports, mut depth) = (Vec::new(), Vec::new(), 0usize);
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::Version { encoding, .. }) => {
                if depth == 0 && encoding != Encoding::Component {
                    return None;
                }
                depth += 1;
            }
            Ok(Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(Payload::ComponentImportSection(r)) if depth == 1 => {
                for i in r.into_iter().flatten() {
                    imports.push(i.name.name.to_string());
                }
            }
            Ok(Payload::ComponentExportSection(r)) if depth == 1 => {
                for e in r.into_iter().flatten() {
                    exports.push(e.name.name.to_string());
                }
            }
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    Some(serde_json::json!({ "exports": exports, "imports": imports }))
}

fn unexpected(what: &str, reason: impl Into<String>) -> DistError {
    DistError::UnexpectedManifest {
        what: what.to_string(),
        reason: reason.into(),
    }
}

fn parse_json<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, DistError> {
    cap(what, bytes.len(), MAX_MANIFEST_BYTES)?;
    serde_json::from_slice(bytes).map_err(|e| unexpected(what, format!("not valid JSON ({e})")))
}

fn check_layer(what: &str, d: &Descriptor, media_type: &str, limit: u64) -> Result<(), DistError> {
    if d.media_type != media_type {
        return Err(unexpected(
            what,
            format!(
                "a layer has media type `{}` where `{media_type}` belongs",
                d.media_type
            ),
        ));
    }
    check_digest(&d.digest)?;
    if d.size > limit {
        return Err(DistError::TooLarge {
            what: format!("the {} layer", d.media_type),
            size: d.size,
            limit,
        });
    }
    Ok(())
}

fn check_manifest_header(what: &str, m: &ImageManifest) -> Result<(), DistError> {
    if m.schema_version != 2 {
        return Err(unexpected(
            what,
            format!("schemaVersion is {}, not 2", m.schema_version),
        ));
    }
    match m.media_type.as_deref() {
        Some(OCI_MANIFEST_MEDIA_TYPE) => Ok(()),
        other => Err(unexpected(
            what,
            format!("mediaType is {other:?}, not `{OCI_MANIFEST_MEDIA_TYPE}`"),
        )),
    }
}

/// The config, component and statement descriptors of a tool manifest, which
/// must be exactly: Wasm config, `application/wasm` layer, DSSE layer.
pub(crate) fn parse_tool(bytes: &[u8]) -> Result<[Descriptor; 3], DistError> {
    const WHAT: &str = "the tool manifest";
    let m: ImageManifest = parse_json(WHAT, bytes)?;
    check_manifest_header(WHAT, &m)?;
    if m.config.media_type != WASM_CONFIG_MEDIA_TYPE {
        return Err(unexpected(
            WHAT,
            format!(
                "the config is `{}`, not `{WASM_CONFIG_MEDIA_TYPE}`",
                m.config.media_type
            ),
        ));
    }
    check_layer(WHAT, &m.config, WASM_CONFIG_MEDIA_TYPE, MAX_CONFIG_BYTES)?;
    let [component, statement] = <[Descriptor; 2]>::try_from(m.layers).map_err(|l| {
        unexpected(
            WHAT,
            format!("it has {} layers, not 2 (component, statement)", l.len()),
        )
    })?;
    check_layer(WHAT, &component, WASM_LAYER_MEDIA_TYPE, MAX_COMPONENT_BYTES)?;
    check_layer(WHAT, &statement, DSSE_MEDIA_TYPE, MAX_ENVELOPE_BYTES)?;
    Ok([m.config, component, statement])
}

/// The envelope descriptor of an approval referrer whose subject must be `subject_digest`.
pub(crate) fn parse_approval(bytes: &[u8], subject_digest: &str) -> Result<Descriptor, DistError> {
    const WHAT: &str = "an approval manifest";
    let m: ImageManifest = parse_json(WHAT, bytes)?;
    check_manifest_header(WHAT, &m)?;
    if m.artifact_type.as_deref() != Some(APPROVAL_ARTIFACT_TYPE) {
        return Err(unexpected(
            WHAT,
            format!("artifactType is {:?}", m.artifact_type),
        ));
    }
    if m.subject.as_ref().map(|s| s.digest.as_str()) != Some(subject_digest) {
        return Err(unexpected(
            WHAT,
            format!("its subject is not {subject_digest}"),
        ));
    }
    let [layer] = <[Descriptor; 1]>::try_from(m.layers)
        .map_err(|l| unexpected(WHAT, format!("it has {} layers, not 1", l.len())))?;
    check_layer(WHAT, &layer, DSSE_MEDIA_TYPE, MAX_ENVELOPE_BYTES)?;
    Ok(layer)
}

/// Parse an image index (checked: schema 2, digests well-formed).
pub(crate) fn parse_index(what: &str, bytes: &[u8]) -> Result<ImageIndex, DistError> {
    let index: ImageIndex = parse_json(what, bytes)?;
    if index.schema_version != 2 {
        return Err(unexpected(
            what,
            format!("schemaVersion is {}, not 2", index.schema_version),
        ));
    }
    for d in &index.manifests {
        check_digest(&d.digest)?;
    }
    Ok(index)
}

/// Check that `bytes` are exactly what `d` describes: its size, then its digest.
pub(crate) fn check_blob(what: &str, d: &Descriptor, bytes: &[u8]) -> Result<(), DistError> {
    check_hash(what, &d.digest, bytes)?;
    if bytes.len() as u64 != d.size {
        return Err(unexpected(
            what,
            format!(
                "it is {} bytes, its descriptor says {}",
                bytes.len(),
                d.size
            ),
        ));
    }
    Ok(())
}

/// Check that `bytes` hash to `expected`.
pub(crate) fn check_hash(what: &str, expected: &str, bytes: &[u8]) -> Result<(), DistError> {
    let actual = sha256_digest(bytes);
    if actual != expected {
        return Err(DistError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_of(component: Vec<u8>) -> serde_json::Value {
        let a = Artifact {
            component,
            statement: b"{}".to_vec(),
            approvals: Vec::new(),
        };
        let stored = encode(&a).unwrap();
        let [config, layer, statement] = parse_tool(&stored.manifest).unwrap();
        check_blob("config", &config, &stored.config).unwrap();
        assert_eq!(layer.digest, sha256_digest(&a.component));
        assert_eq!(statement.digest, sha256_digest(&a.statement));
        serde_json::from_slice(&stored.config).unwrap()
    }

    #[test]
    fn the_config_lists_a_components_top_level_imports_and_exports() {
        let component = wat::parse_str(
            r#"(component
                 (import "airlock:verbs/log@0.1.0" (instance))
                 (import "f" (func $f))
                 (component $inner (import "nested" (func)))
                 (export "g" (func $f)))"#,
        )
        .unwrap();
        let config = config_of(component);
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert_eq!(config["created"], CREATED);
        assert_eq!(
            config["component"],
            serde_json::json!({ "exports": ["g"], "imports": ["airlock:verbs/log@0.1.0", "f"] })
        );
        // A core module or other bytes leave `component` out, the config still valid.
        for other in [wat::parse_str("(module)").unwrap(), b"not wasm".to_vec()] {
            let config = config_of(other);
            assert!(config.get("component").is_none(), "{config}");
            assert_eq!(config["os"], "wasip2");
        }
    }
}
