//! Why a request was refused, and how to say so on the wire: the HTTP status,
//! a short code for the audit record and the `WWW-Authenticate` challenge of
//! RFC 6750 with the `resource_metadata` of RFC 9728.

/// Why [`Authenticator::check`](crate::Authenticator::check) refused a
/// request. No variant carries the token or any part of it; every string in
/// it is either written by this crate or cleaned of quotes and control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no Authorization header; send `Authorization: Bearer <token>`")]
    Missing,
    /// An `Authorization` header with another scheme (`Basic`, ...).
    #[error(
        "the Authorization header does not use the Bearer scheme; send `Authorization: Bearer <token>`"
    )]
    NotBearer,
    /// A bearer token that matches no configured token.
    #[error("the bearer token is not one this server knows; check it, or ask the operator for one")]
    UnknownToken,
    /// A JWT whose `exp` has passed (beyond the leeway).
    #[error("the access token has expired; get a new one from the authorization server")]
    Expired,
    /// A JWT whose `nbf` is still ahead (beyond the leeway).
    #[error("the access token is not valid yet; check the clocks of the client and the server")]
    NotYetValid,
    /// A JWT whose `aud` is missing or does not contain the audience.
    #[error("the access token is meant for another audience; request one for this server")]
    WrongAudience,
    /// A JWT whose `iss` is missing or not the configured issuer.
    #[error(
        "the access token comes from an issuer this server does not trust; get one from its authorization server"
    )]
    WrongIssuer,
    /// A JWT whose signature does not verify with its key.
    #[error(
        "the access token's signature does not verify; it was altered or signed by another key, get a new one"
    )]
    BadSignature,
    /// A JWT whose `alg` is not allowed, or does not fit the key it names.
    #[error(
        "the access token's algorithm `{0}` is not accepted: it is not among the configured \
         asymmetric algorithms, or not the algorithm of the key the token names"
    )]
    AlgorithmNotAllowed(String),
    /// A JWT naming a key the JWKS does not hold (after a refetch, when one
    /// was due).
    #[error(
        "the access token names a signing key the server does not know; retry later or get a new token"
    )]
    UnknownKey,
    /// Not a token this server can read.
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    /// A valid credential that may not use this toolkit.
    #[error("this credential may not use toolkit `{toolkit}`; ask the operator to grant it")]
    Forbidden {
        /// The toolkit the request was for.
        toolkit: String,
    },
}

impl AuthError {
    /// The HTTP status: 403 for [`AuthError::Forbidden`], 401 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Forbidden { .. } => 403,
            _ => 401,
        }
    }

    /// A short, stable code for the audit record (`"expired"`,
    /// `"forbidden"`, ...); the `Display` text adds the detail and is just
    /// as safe to record.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::NotBearer => "not-bearer",
            AuthError::UnknownToken => "unknown-token",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not-yet-valid",
            AuthError::WrongAudience => "wrong-audience",
            AuthError::WrongIssuer => "wrong-issuer",
            AuthError::BadSignature => "bad-signature",
            AuthError::AlgorithmNotAllowed(_) => "algorithm-not-allowed",
            AuthError::UnknownKey => "unknown-key",
            AuthError::Malformed(_) => "malformed",
            AuthError::Forbidden { .. } => "forbidden",
        }
    }

    /// The `WWW-Authenticate` value for the refusal (RFC 6750 section 3, as
    /// the MCP authorization spec uses it). Without credentials (no header,
    /// or another scheme) it carries no `error`; a bad credential gets
    /// `invalid_token`; a forbidden toolkit gets `insufficient_scope` and
    /// the `scope` that would grant it. `resource_metadata_url` is this
    /// server's `/.well-known/oauth-protected-resource` URL (RFC 9728), when
    /// it publishes one.
    pub fn www_authenticate(&self, resource_metadata_url: Option<&str>) -> String {
        let mut out = String::from("Bearer realm=\"airlock\"");
        let error = match self {
            AuthError::Missing | AuthError::NotBearer => None,
            AuthError::Forbidden { .. } => Some("insufficient_scope"),
            _ => Some("invalid_token"),
        };
        if let Some(error) = error {
            out.push_str(&format!(
                ", error=\"{error}\", error_description=\"{}\"",
                quotable(&self.to_string())
            ));
        }
        if let AuthError::Forbidden { toolkit } = self {
            out.push_str(&format!(", scope=\"toolkit:{}\"", quotable(toolkit)));
        }
        if let Some(url) = resource_metadata_url {
            out.push_str(&format!(", resource_metadata=\"{}\"", quotable(url)));
        }
        out
    }
}

/// `text` with only the characters RFC 6750 allows inside a quoted
/// challenge value (printable ASCII but `"` and `\`); others become `?`.
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => '?',
        })
        .collect()
}

/// Up to 32 characters of attacker-supplied text (a JWT's `alg`), safe to
/// print: anything but ASCII letters, digits, `-` and `_` becomes `?`.
pub(crate) fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(32)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if text.chars().count() > 32 {
        out.push_str("...");
    }
    out
}
