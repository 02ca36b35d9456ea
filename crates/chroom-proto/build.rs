//! Generates prost code from `proto/` with protox, so no `protoc` binary is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["chroom/signal/v1/signal.proto", "chroom/room/v1/room.proto"];
    // The imported protos too: a change to any of them changes the generated code.
    for file in files.iter().chain(&["chroom/overlay/v1/overlay.proto"]) {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(files, [&root])?;
    prost_build::Config::new()
        .bytes(["."])
        // One file with the packages as nested modules, so cross-package references resolve.
        .include_file("chroom.rs")
        .compile_fds(descriptors)?;
    Ok(())
}
