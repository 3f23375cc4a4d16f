//! Helpers for airlock guest tools written in Rust with `wit-bindgen`.
//!
//! Every verb returns the WIT `error` of `airlock:verbs/types`. The `Display`
//! that `wit-bindgen` generates for it prints Rust's `Debug` form
//! (`Error::Denied("…")`), which is what a model would read when a tool passes
//! the error on. [`verb_error!`] teaches the guest's own generated type the
//! shape of that variant, and [`describe`] turns it into a sentence:
//!
//! ```text
//! wit_bindgen::generate!({ world: "my-tool", path: ["../../wit", "wit"], generate_all });
//! airlock_guest::verb_error!(airlock::verbs::types::Error);
//!
//! let response = fetch::send(&request).map_err(|e| airlock_guest::describe("fetch", &e))?;
//! // "fetch denied: https://x/ is not in this tool's fetch grant …"
//! ```

/// The cases of the WIT `error`, borrowed from a guest's generated type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case<'a> {
    /// `denied(reason)`: the grant does not allow the call.
    Denied(&'a str),
    /// `exhausted(quota)`: a per-job quota ran out.
    Exhausted(&'a str),
    /// `invalid(reason)`: the request is malformed.
    Invalid(&'a str),
    /// `upstream(reason)`: the service behind the verb failed.
    Upstream(&'a str),
    /// `timeout`: the job's deadline passed.
    Timeout,
}

/// A guest's generated WIT `error` type; implement it with [`verb_error!`].
pub trait VerbError {
    /// Which case this error is, and its text.
    fn case(&self) -> Case<'_>;
}

/// Implements [`VerbError`] for the WIT `error` type a guest generated
/// (usually `airlock::verbs::types::Error`).
#[macro_export]
macro_rules! verb_error {
    ($error:ty) => {
        impl $crate::VerbError for $error {
            fn case(&self) -> $crate::Case<'_> {
                match self {
                    Self::Denied(s) => $crate::Case::Denied(s),
                    Self::Exhausted(s) => $crate::Case::Exhausted(s),
                    Self::Invalid(s) => $crate::Case::Invalid(s),
                    Self::Upstream(s) => $crate::Case::Upstream(s),
                    Self::Timeout => $crate::Case::Timeout,
                }
            }
        }
    };
}

/// The error of a call to `verb` as one sentence a model can act on:
/// `fetch denied: …`, `sign exhausted its sign-calls quota for this job`,
/// `complete failed upstream: rate limited`, `fetch timed out: …`.
pub fn describe(verb: &str, error: &impl VerbError) -> String {
    match error.case() {
        Case::Denied(why) => format!("{verb} denied: {why}"),
        Case::Exhausted(quota) => {
            format!("{verb} exhausted its {quota} quota for this job; no further call can succeed")
        }
        Case::Invalid(why) => format!("{verb} refused an invalid request: {why}"),
        Case::Upstream(why) => format!("{verb} failed upstream: {why}"),
        Case::Timeout => format!("{verb} timed out: the job's deadline passed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `wit-bindgen` generates for the WIT `error`.
    #[derive(Debug)]
    #[allow(dead_code)]
    enum Error {
        Denied(String),
        Exhausted(String),
        Invalid(String),
        Upstream(String),
        Timeout,
    }
    verb_error!(Error);

    #[test]
    fn each_case_is_a_sentence_naming_the_verb() {
        let cases = [
            (
                Error::Denied("https://x/ is not in this tool's fetch grant".into()),
                "fetch denied: https://x/ is not in this tool's fetch grant",
            ),
            (
                Error::Exhausted("fetch-requests".into()),
                "fetch exhausted its fetch-requests quota for this job; no further call can succeed",
            ),
            (
                Error::Invalid("\"GOT\" is not an HTTP method".into()),
                "fetch refused an invalid request: \"GOT\" is not an HTTP method",
            ),
            (
                Error::Upstream("connection refused".into()),
                "fetch failed upstream: connection refused",
            ),
            (Error::Timeout, "fetch timed out: the job's deadline passed"),
        ];
        for (error, sentence) in cases {
            assert_eq!(describe("fetch", &error), sentence);
            assert!(!describe("fetch", &error).contains("Error::"));
        }
    }
}
