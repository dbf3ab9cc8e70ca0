//! Tributary's gRPC API (package `tributary.v1`): the messages, the `Hub`
//! service's server trait ([`v1::hub_server`]) and its client
//! ([`v1::hub_client`]), generated from `proto/tributary.proto`, which
//! documents each call and its error codes.
//!
//! A hub with a token wants every call to carry `authorization: Bearer
//! <token>` metadata: see [`bearer`].

/// `tributary.v1`, generated.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("tributary.v1");
}

/// The metadata key the token travels in.
pub const AUTHORIZATION: &str = "authorization";

/// `Bearer <token>` as a metadata value; `None` when the token cannot be
/// one (it holds characters metadata may not carry).
pub fn bearer(token: &str) -> Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>> {
    format!("Bearer {token}").parse().ok()
}
