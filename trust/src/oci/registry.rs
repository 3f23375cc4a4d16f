//! Push and pull a tool to and from an OCI registry with `oci-client`: plain
//! HTTP only to loopback, TLS (rustls, ring) otherwise. Every manifest and blob
//! is re-hashed here, sizes are capped before and while reading, and approvals
//! travel as referrers (the referrers API, or the spec's tag-schema fallback).

use std::future::poll_fn;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use secrecy::{ExposeSecret, SecretString};

use super::manifest::{
    self, APPROVAL_ARTIFACT_TYPE, Descriptor, EMPTY_CONFIG, MAX_APPROVALS, MAX_COMPONENT_BYTES,
    MAX_CONFIG_BYTES, MAX_ENVELOPE_BYTES, MAX_MANIFEST_BYTES, OCI_INDEX_MEDIA_TYPE,
    OCI_MANIFEST_MEDIA_TYPE, Stored, referrers_tag,
};
use super::{Artifact, DistError, Pulled, ToolRef, is_exact_version, layout};

/// The environment variables [`Auth::from_env`] reads.
pub const USERNAME_ENV: &str = "AIRLOCK_REGISTRY_USERNAME";
/// See [`USERNAME_ENV`].
pub const PASSWORD_ENV: &str = "AIRLOCK_REGISTRY_PASSWORD";

/// Registry credentials: anonymous, or HTTP basic (also what registries
/// exchange for a bearer token). The password never appears in `Debug`.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// No credentials.
    #[default]
    Anonymous,
    /// A user name and password (or access token).
    Basic {
        /// The user name.
        username: String,
        /// The password or token.
        password: SecretString,
    },
}

impl Auth {
    /// `AIRLOCK_REGISTRY_USERNAME` and `AIRLOCK_REGISTRY_PASSWORD` when both
    /// are set, anonymous when neither is; one without the other is an error.
    pub fn from_env() -> Result<Self, DistError> {
        let user = std::env::var(USERNAME_ENV).ok();
        let pass = std::env::var(PASSWORD_ENV).ok();
        match (user, pass) {
            (None, None) => Ok(Auth::Anonymous),
            (Some(username), Some(password)) => Ok(Auth::Basic {
                username,
                password: password.into(),
            }),
            _ => Err(DistError::Credentials(format!(
                "set both {USERNAME_ENV} and {PASSWORD_ENV}, or neither for anonymous access"
            ))),
        }
    }

    fn to_oci(&self) -> RegistryAuth {
        match self {
            Auth::Anonymous => RegistryAuth::Anonymous,
            Auth::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.expose_secret().to_string())
            }
        }
    }
}

/// Push `a` to `r` (the tag is set or moved; a digest in `r` must equal the
/// manifest's), then each approval as a referrer. Returns the manifest digest.
pub async fn push(r: &ToolRef, a: &Artifact, auth: &Auth) -> Result<String, DistError> {
    if let Some(tag) = r.tag()
        && !is_exact_version(tag)
    {
        return Err(DistError::FloatingTag {
            reference: r.to_string(),
        });
    }
    let stored = manifest::encode(a)?;
    let digest = stored.manifest_digest();
    if let Some(pinned) = r.digest()
        && pinned != digest
    {
        return Err(DistError::DigestMismatch {
            what: format!("the manifest to push to {r}"),
            expected: pinned.to_string(),
            actual: digest,
        });
    }
    let s = Session::new(r, auth).await;
    for blob in [&stored.config, &stored.component, &stored.statement] {
        s.push_blob(blob).await?;
    }
    let target = match r.tag() {
        Some(tag) => s.tagged(tag),
        None => s.by_digest(&digest),
    };
    s.push_manifest(&target, &stored.manifest, OCI_MANIFEST_MEDIA_TYPE)
        .await?;
    for (m, envelope) in &stored.approvals {
        s.push_referrer(&digest, m, envelope).await?;
    }
    Ok(digest)
}

/// Add one approval (a DSSE envelope) as a referrer of the tool `r` names;
/// returns the approval manifest's digest.
pub async fn push_approval(r: &ToolRef, approval: &[u8], auth: &Auth) -> Result<String, DistError> {
    let s = Session::new(r, auth).await;
    let (subject, digest) = s.pull_manifest(&r.to_oci(), r.digest()).await?;
    manifest::parse_tool(&subject)?;
    let m =
        manifest::encode_approval(&Descriptor::of(OCI_MANIFEST_MEDIA_TYPE, &subject), approval)?;
    s.push_referrer(&digest, &m, approval).await?;
    Ok(manifest::sha256_digest(&m))
}

/// Pull the tool `r` names (by tag or digest) with its approvals; every byte
/// re-hashed against its descriptor and against `r`'s digest when pinned.
pub async fn pull(r: &ToolRef, auth: &Auth) -> Result<Pulled, DistError> {
    Ok(fetch(r, auth).await?.pulled())
}

/// Pull `r` and store it byte-exact in the layout `dir` (the local store a
/// toolkit loads from), tagged with `r`'s version when it has one; the
/// manifest digest is the same in both places.
pub async fn pull_to_layout(r: &ToolRef, auth: &Auth, dir: &Path) -> Result<Pulled, DistError> {
    let stored = fetch(r, auth).await?;
    let tag = r.tag().filter(|t| is_exact_version(t));
    layout::store(dir, tag, &stored)?;
    Ok(stored.pulled())
}

async fn fetch(r: &ToolRef, auth: &Auth) -> Result<Stored, DistError> {
    let s = Session::new(r, auth).await;
    let (manifest, digest) = s.pull_manifest(&r.to_oci(), r.digest()).await?;
    let [config, component, statement] = manifest::parse_tool(&manifest)?;
    let mut stored = Stored {
        config: s.pull_blob("the config", &config, MAX_CONFIG_BYTES).await?,
        component: s
            .pull_blob("the component layer", &component, MAX_COMPONENT_BYTES)
            .await?,
        statement: s
            .pull_blob("the statement layer", &statement, MAX_ENVELOPE_BYTES)
            .await?,
        manifest,
        approvals: Vec::new(),
    };
    let referrers = s
        .client
        .pull_referrers(&s.by_digest(&digest), Some(APPROVAL_ARTIFACT_TYPE))
        .await
        .map_err(|e| s.error("the referrers", e))?;
    let entries: Vec<_> = referrers
        .manifests
        .into_iter()
        .filter(|e| e.artifact_type.as_deref() == Some(APPROVAL_ARTIFACT_TYPE))
        .collect();
    if entries.len() > MAX_APPROVALS {
        return Err(DistError::TooLarge {
            what: "the approval list".into(),
            size: entries.len() as u64,
            limit: MAX_APPROVALS as u64,
        });
    }
    for e in entries {
        let (m, _) = s
            .pull_manifest(&s.by_digest(&e.digest), Some(&e.digest))
            .await?;
        let layer = manifest::parse_approval(&m, &digest)?;
        let envelope = s
            .pull_blob("an approval", &layer, MAX_ENVELOPE_BYTES)
            .await?;
        stored.approvals.push((m, envelope));
    }
    Ok(stored)
}

/// One client for one repository.
struct Session {
    client: Client,
    registry: String,
    repository: String,
    auth: RegistryAuth,
}

impl Session {
    async fn new(r: &ToolRef, auth: &Auth) -> Self {
        // reqwest is built without a bundled provider: the process uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if r.is_loopback() {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        });
        let auth = auth.to_oci();
        client.store_auth_if_needed(r.registry(), &auth).await;
        Session {
            client,
            registry: r.registry().to_string(),
            repository: r.repository().to_string(),
            auth,
        }
    }

    fn tagged(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            tag.to_string(),
        )
    }

    fn by_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.registry.clone(),
            self.repository.clone(),
            digest.to_string(),
        )
    }

    /// Map a transport error: digest failures and 404s keep their meaning.
    fn error(&self, what: &str, e: OciDistributionError) -> DistError {
        let not_found = |code: &OciErrorCode| {
            matches!(
                code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NameUnknown
            )
        };
        match e {
            OciDistributionError::DigestError(
                oci_client::errors::DigestError::VerificationError { expected, actual },
            ) => DistError::DigestMismatch {
                what: what.to_string(),
                expected,
                actual,
            },
            OciDistributionError::ImageManifestNotFoundError(_)
            | OciDistributionError::ServerError { code: 404, .. } => DistError::NotFound {
                what: format!("{what} in {}/{}", self.registry, self.repository),
            },
            OciDistributionError::RegistryError { ref envelope, .. }
                if envelope.errors.iter().any(|e| not_found(&e.code)) =>
            {
                DistError::NotFound {
                    what: format!("{what} in {}/{}", self.registry, self.repository),
                }
            }
            e => DistError::Registry {
                registry: self.registry.clone(),
                message: format!("{what}: {e}"),
            },
        }
    }

    /// A manifest, re-hashed here and checked against `pinned`.
    async fn pull_manifest(
        &self,
        image: &Reference,
        pinned: Option<&str>,
    ) -> Result<(Vec<u8>, String), DistError> {
        self.pull_document(image, pinned, OCI_MANIFEST_MEDIA_TYPE, "the manifest")
            .await
    }

    async fn pull_document(
        &self,
        image: &Reference,
        pinned: Option<&str>,
        media_type: &str,
        what: &str,
    ) -> Result<(Vec<u8>, String), DistError> {
        // oci-client reads a manifest body whole before we see it: the cap is
        // checked after, and the read timeout bounds only a slow sender.
        let (bytes, _) = self
            .client
            .pull_manifest_raw(image, &self.auth, &[media_type])
            .await
            .map_err(|e| self.error(what, e))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(DistError::TooLarge {
                what: what.to_string(),
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let digest = manifest::sha256_digest(&bytes);
        if let Some(pinned) = pinned {
            manifest::check_hash(what, pinned, &bytes)?;
        }
        Ok((bytes.to_vec(), digest))
    }

    /// A blob, read no further than its descriptor's size and re-hashed.
    async fn pull_blob(
        &self,
        what: &str,
        d: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>, DistError> {
        let size = d.size.min(limit);
        if d.size > limit {
            return Err(DistError::TooLarge {
                what: what.to_string(),
                size: d.size,
                limit,
            });
        }
        let desc = OciDescriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: size as i64,
            ..OciDescriptor::default()
        };
        let image = self.by_digest(&d.digest);
        let mut stream = self
            .client
            .pull_blob_stream(&image, &desc)
            .await
            .map_err(|e| self.error(what, e))?
            .stream;
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
            match chunk {
                Ok(chunk) if (bytes.len() + chunk.len()) as u64 > size => {
                    return Err(DistError::TooLarge {
                        what: format!("{what} (longer than its descriptor)"),
                        size: (bytes.len() + chunk.len()) as u64,
                        limit: size,
                    });
                }
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                // oci-client's own digest check fails at the end of the
                // stream: ours, over the same bytes, names the mismatch.
                Err(e) => {
                    manifest::check_hash(what, &d.digest, &bytes)?;
                    return Err(DistError::Registry {
                        registry: self.registry.clone(),
                        message: format!("{what}: {e}"),
                    });
                }
            }
        }
        manifest::check_blob(what, d, &bytes)?;
        Ok(bytes)
    }

    async fn push_blob(&self, bytes: &[u8]) -> Result<(), DistError> {
        let digest = manifest::sha256_digest(bytes);
        self.client
            .push_blob(&self.by_digest(&digest), bytes.to_vec(), &digest)
            .await
            .map_err(|e| self.error("a blob push", e))?;
        Ok(())
    }

    async fn push_manifest(
        &self,
        target: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), DistError> {
        let content_type = media_type
            .parse()
            .expect("media types are valid header values");
        self.client
            .push_manifest_raw(target, bytes.to_vec(), content_type)
            .await
            .map_err(|e| self.error("a manifest push", e))?;
        Ok(())
    }

    /// Push an approval referrer and add it to the subject's fallback
    /// referrers index (tag `sha256-<hex>`). oci-client does not surface the
    /// `OCI-Subject` header that says a registry indexes referrers itself, so
    /// the index is always kept; registries with the referrers API ignore it.
    async fn push_referrer(
        &self,
        subject: &str,
        m: &[u8],
        envelope: &[u8],
    ) -> Result<(), DistError> {
        self.push_blob(EMPTY_CONFIG).await?;
        self.push_blob(envelope).await?;
        let digest = manifest::sha256_digest(m);
        self.push_manifest(&self.by_digest(&digest), m, OCI_MANIFEST_MEDIA_TYPE)
            .await?;
        let index_ref = self.tagged(&referrers_tag(subject));
        let existing = match self
            .pull_document(
                &index_ref,
                None,
                OCI_INDEX_MEDIA_TYPE,
                "the referrers index",
            )
            .await
        {
            Ok((bytes, _)) => Some(bytes),
            Err(DistError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let updated = manifest::add_referrer(existing.as_deref(), m)?;
        if existing.as_deref() != Some(updated.as_slice()) {
            self.push_manifest(&index_ref, &updated, OCI_INDEX_MEDIA_TYPE)
                .await?;
        }
        Ok(())
    }
}
