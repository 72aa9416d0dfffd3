//! Every RPC of the contract has an entry in the permission table, and every entry is an RPC.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kelvin_auth::{PERMISSIONS, permission_for};
use prost::Message;

fn contract_methods() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(kelvin_proto::FILE_DESCRIPTOR_SET)
        .expect("the contract's descriptor set decodes");
    let mut methods = Vec::new();
    for file in &set.file {
        let package = file.package();
        if !package.starts_with("kelvin.") {
            continue;
        }
        for service in &file.service {
            for method in &service.method {
                methods.push(format!("/{package}.{}/{}", service.name(), method.name()));
            }
        }
    }
    methods
}

#[test]
fn every_rpc_of_the_contract_has_a_permission() {
    let methods = contract_methods();
    assert!(methods.len() >= 12, "the contract has its RPCs: {methods:?}");
    let missing: Vec<_> = methods.iter().filter(|m| permission_for(m).is_none()).collect();
    assert!(missing.is_empty(), "RPCs without a permission entry: {missing:?}");
}

#[test]
fn every_permission_names_an_rpc_once() {
    let methods = contract_methods();
    let mut seen = std::collections::HashSet::new();
    for p in PERMISSIONS {
        assert!(
            methods.iter().any(|m| m == p.method),
            "{} is not an RPC of the contract",
            p.method
        );
        assert!(seen.insert(p.method), "{} is listed twice", p.method);
        assert!(!p.roles.is_empty(), "{} allows no role", p.method);
    }
}
