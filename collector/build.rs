//! Minifies the tracker (`tracker/script.js`) into `OUT_DIR`, with a gzip copy, so the binary
//! serves a small file without any manual step. `tracker.rs` embeds both.

use std::io::Write as _;
use std::path::PathBuf;

use oxc::allocator::Allocator;
use oxc::codegen::{Codegen, CodegenOptions, CommentOptions};
use oxc::minifier::{CompressOptions, MangleOptions, Minifier, MinifierOptions};
use oxc::parser::Parser;
use oxc::span::SourceType;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let source_path = manifest.join("../tracker/script.js");
    println!("cargo:rerun-if-changed={}", source_path.display());
    let source = std::fs::read_to_string(&source_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", source_path.display()));

    let allocator = Allocator::default();
    // A classic script, not a module: its top-level block keeps every name private.
    let parsed = Parser::new(&allocator, &source, SourceType::cjs()).parse();
    if !parsed.diagnostics.is_empty() {
        panic!(
            "{} does not parse: {:?}",
            source_path.display(),
            parsed.diagnostics
        );
    }
    let mut program = parsed.program;
    let options = MinifierOptions {
        mangle: Some(MangleOptions::default()),
        mangle_properties: None,
        compress: Some(CompressOptions::smallest()),
    };
    let minified = Minifier::new(options).minify(&allocator, &mut program);
    let code = Codegen::new()
        .with_options(CodegenOptions {
            minify: true,
            comments: CommentOptions::disabled(),
            ..CodegenOptions::default()
        })
        .with_scoping(minified.scoping)
        .build(&program)
        .code;

    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(code.as_bytes()).expect("writing to memory");
    let gzipped = gzip.finish().expect("writing to memory");

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("script.min.js"), &code).expect("writing OUT_DIR");
    std::fs::write(out.join("script.min.js.gz"), &gzipped).expect("writing OUT_DIR");
}
