//! Compiles `proto/nadc/v1/*.proto` in pure Rust (protox: no protoc needed)
//! and generates the tonic clients and servers.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with env!(): a build script binary
    // cached in a shared target dir may have been compiled for a checkout
    // at another path.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "common",
        "ingest",
        "search",
        "admin",
        "alerts",
        "governance",
        "reports",
        "analysis",
        "log",
    ]
    .map(|f| root.join(format!("nadc/v1/{f}.proto")));
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("nadc_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // Plates are personal data: these get hand-written, redacting Debug.
        .skip_debug([
            ".nadc.v1.Read",
            ".nadc.v1.ReadRow",
            ".nadc.v1.VrmTimelineRequest",
            ".nadc.v1.HotlistEntry",
            ".nadc.v1.ConvoyRequest",
            ".nadc.v1.ClonesRequest",
            ".nadc.v1.Companion",
            ".nadc.v1.ClonePair",
            ".nadc.v1.CompanionBrief",
            ".nadc.v1.RemoveEntriesRequest",
            ".nadc.v1.AuditRecord",
            ".nadc.v1.HotSpotsRequest",
        ])
        .compile_fds(fds)?;
    Ok(())
}
