//! Compiles `proto/kelvin/v1/*.proto` into `OUT_DIR` (nothing generated is committed) and writes
//! the descriptor set that server reflection and the permission-table test read.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let root = root.canonicalize()?;
    let mut files = Vec::new();
    // The directory too, so that a new .proto file triggers a rebuild.
    println!("cargo:rerun-if-changed={}", root.join("kelvin/v1").display());
    for entry in std::fs::read_dir(root.join("kelvin/v1"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
    files.sort();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    // `prost::Name` on every message: the checked codec looks requests up by their full name.
    config.enable_type_names();
    // A vendored protoc (with the well-known types) unless PROTOC names one: no system package is
    // needed on CI or a fresh machine.
    let mut includes = vec![root];
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
        includes.push(protoc_bin_vendored::include_path()?);
    }
    tonic_prost_build::configure()
        .codec_path("crate::codec::CheckedCodec")
        .file_descriptor_set_path(out.join("kelvin_descriptor.bin"))
        .compile_with_config(config, &files, &includes)?;
    Ok(())
}
