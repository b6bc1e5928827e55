//! Wire definitions shared by Cairn processes, generated from `proto/cairn.proto`.
//!
//! # Layout
//!
//! - `proto/cairn.proto`: the one source of truth for the wire format: the Raft
//!   transport (opaque bincode payloads), the dataset catalog, and cluster admin.
//! - [`v1`]: the generated prost messages and tonic clients/servers.
//!
//! Nothing outside the gRPC layers and `cairn-client` should name these types.

/// Generated code for package `cairn.v1`.
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("cairn.v1");
}
