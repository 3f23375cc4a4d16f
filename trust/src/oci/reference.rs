//! `ToolRef`: a registry reference that pins, `host[:port]/team/tool:1.4.2`,
//! `…@sha256:…` or both. A tag must be an exact version: `:latest`, `:1`,
//! `:1.4` or no tag at all can move to other content and are refused.

use std::fmt;
use std::str::FromStr;

use super::DistError;
use super::manifest::check_digest;

/// A parsed tool reference in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ToolRef {
    /// Parse `registry[:port]/namespace/name:VERSION`, `…@sha256:HEX` or
    /// `…:VERSION@sha256:HEX`. The registry host is required; a tag must be
    /// an exact version `MAJOR.MINOR.PATCH[-prerelease]` unless a digest pins.
    pub fn parse(reference: &str) -> Result<Self, DistError> {
        let invalid = |reason: &str| DistError::InvalidReference {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        let (name_tag, digest) = match reference.split_once('@') {
            Some((n, d)) => {
                check_digest(d)?;
                (n, Some(d.to_string()))
            }
            None => (reference, None),
        };
        let (registry, path) = name_tag.split_once('/').ok_or_else(|| {
            invalid("name the registry host first, e.g. `registry.example/team/tool:1.0.0`")
        })?;
        if !looks_like_host(registry) {
            return Err(invalid(
                "the first part must be a registry host (with a dot, a port, `localhost` or `[::1]`)",
            ));
        }
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
            _ => (path, None),
        };
        if !repository.split('/').all(valid_path_component) {
            return Err(invalid(
                "the repository must be lower-case path components ([a-z0-9] joined by `.`, `_`, `-`)",
            ));
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(invalid(
                "a tag is 1-128 of [A-Za-z0-9_.-] and starts with a letter, digit or `_`",
            ));
        }
        let exact = tag.is_some_and(is_exact_version);
        if digest.is_none() && !exact {
            return Err(DistError::FloatingTag {
                reference: reference.to_string(),
            });
        }
        Ok(ToolRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry host, with its port when one was given.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`team/summarize`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The version tag, when one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned manifest digest, when one was given.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The same tool pinned to `digest` (the tag is kept).
    pub fn with_digest(&self, digest: &str) -> Result<Self, DistError> {
        check_digest(digest)?;
        Ok(ToolRef {
            digest: Some(digest.to_string()),
            ..self.clone()
        })
    }

    /// Whether the registry is this machine (`127.0.0.1`, `[::1]`, `localhost`):
    /// the only registries spoken to over plain HTTP.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => self.registry.split(':').next().unwrap_or(""),
        };
        matches!(host, "127.0.0.1" | "::1" | "localhost")
    }

    /// The oci-client reference: by digest when pinned, else by tag.
    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        let (reg, repo) = (self.registry.clone(), self.repository.clone());
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => {
                oci_client::Reference::with_tag_and_digest(reg, repo, t.clone(), d.clone())
            }
            (None, Some(d)) => oci_client::Reference::with_digest(reg, repo, d.clone()),
            (Some(t), None) => oci_client::Reference::with_tag(reg, repo, t.clone()),
            (None, None) => unreachable!("parse requires a tag or a digest"),
        }
    }
}

impl FromStr for ToolRef {
    type Err = DistError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ToolRef::parse(s)
    }
}

impl fmt::Display for ToolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Whether `tag` is an exact version: `MAJOR.MINOR.PATCH` (no leading zeros)
/// with an optional `-prerelease` of dot-separated `[0-9A-Za-z-]` identifiers.
/// (OCI tags cannot hold `+`, so there is no build metadata.)
pub fn is_exact_version(tag: &str) -> bool {
    let (core, pre) = match tag.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (tag, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let number_ok = |n: &&str| {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n.len() == 1 || !n.starts_with('0'))
    };
    let pre_ok = pre.is_none_or(|p| {
        p.split('.')
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    });
    numbers.len() == 3 && numbers.iter().all(number_ok) && pre_ok
}

fn looks_like_host(s: &str) -> bool {
    (s.contains('.') || s.contains(':') || s == "localhost")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

fn valid_path_component(c: &str) -> bool {
    !c.is_empty()
        && c.split(['.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn valid_tag(t: &str) -> bool {
    let first_ok = t
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn floating_tags_are_refused() {
        for r in [
            "registry.example/team/summarize:latest",
            "registry.example/team/summarize:1",
            "registry.example/team/summarize:1.4",
            "registry.example/team/summarize",
            "registry.example/team/summarize:v1.4.2",
            "registry.example/team/summarize:01.4.2",
            "registry.example/team/summarize:1.4.2-",
        ] {
            match ToolRef::parse(r) {
                Err(DistError::FloatingTag { reference }) => assert_eq!(reference, r),
                other => panic!("{r}: expected FloatingTag, got {other:?}"),
            }
        }
        let msg = ToolRef::parse("r.example/t:latest")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("exact version") && msg.contains("digest"),
            "{msg}"
        );
    }

    #[test]
    fn exact_versions_digests_ports_and_namespaces_parse() {
        let r = ToolRef::parse("registry.example/team/summarize:1.4.2").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag(), r.digest()),
            ("registry.example", "team/summarize", Some("1.4.2"), None)
        );
        let pre = ToolRef::parse("registry.example/t/s:2.0.0-rc.1").unwrap();
        assert_eq!(pre.tag(), Some("2.0.0-rc.1"));

        let d = format!("registry.example:5000/a/b/c/tool@sha256:{HEX}");
        let r = ToolRef::parse(&d).unwrap();
        assert_eq!(r.registry(), "registry.example:5000");
        assert_eq!(r.repository(), "a/b/c/tool");
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(format!("sha256:{HEX}").as_str()));
        assert_eq!(r.to_string(), d);

        // A digest pins, so even a floating tag beside it is accepted.
        let both = format!("127.0.0.1:5000/t/s:latest@sha256:{HEX}");
        let r = ToolRef::parse(&both).unwrap();
        assert_eq!((r.tag(), r.is_loopback()), (Some("latest"), true));
        assert_eq!(r.to_string(), both);

        assert!(
            ToolRef::parse("localhost:5000/t:1.0.0")
                .unwrap()
                .is_loopback()
        );
        assert!(ToolRef::parse("[::1]:5000/t:1.0.0").unwrap().is_loopback());
        assert!(
            !ToolRef::parse("registry.example/t:1.0.0")
                .unwrap()
                .is_loopback()
        );
        assert!(
            !ToolRef::parse("127.0.0.1.evil.example/t:1.0.0")
                .unwrap()
                .is_loopback()
        );
    }

    #[test]
    fn malformed_references_are_refused() {
        for r in [
            "team/summarize:1.0.0",
            "registry.example/Team/summarize:1.0.0",
            "registry.example//s:1.0.0",
            "registry.example/s@sha256:abc",
            &format!("registry.example/s@sha512:{HEX}"),
            &format!("registry.example/s@sha256:{}", HEX.to_uppercase()),
        ] {
            assert!(
                matches!(
                    ToolRef::parse(r),
                    Err(DistError::InvalidReference { .. } | DistError::InvalidDigest { .. })
                ),
                "{r}: {:?}",
                ToolRef::parse(r)
            );
        }
    }
}
