//! The `kelvin.v1` contract: messages, clients and servers generated from `proto/` at build time.
//!
//! Every service and every generated client (Rust, Python, Go, ...) shares this one contract.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod codec;
pub mod convert;

/// Package `kelvin.v1`.
pub mod v1 {
    tonic::include_proto!("kelvin.v1");
}

/// The encoded `FileDescriptorSet` of the contract, for server reflection and contract tests.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kelvin_descriptor");
