//! Distribution and trust for tools shared inside a company: publisher keys,
//! the signed statement that binds a component's bytes to the grants it
//! requests, the operator's trust policy, toolkit lockfiles and OCI transport.
//! The host consumes the verdicts; nothing here runs a component.

pub mod oci;
