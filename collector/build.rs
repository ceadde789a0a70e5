//! Minifies the tracker (`tracker/script.js`) and the dashboard's scripts (`dashboard/app.js`,
//! `dashboard/admin.js`)
//! into `OUT_DIR`, each with a gzip copy (the dashboard's CSS and HTML get one too), so the
//! binary serves small files without any manual step. `tracker.rs` and `http/dashboard.rs`
//! embed them.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use oxc::allocator::Allocator;
use oxc::codegen::{Codegen, CodegenOptions, CommentOptions};
use oxc::minifier::{CompressOptions, MangleOptions, Minifier, MinifierOptions};
use oxc::parser::Parser;
use oxc::span::SourceType;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    // A classic script, not a module: its top-level block keeps every name private.
    let tracker = minify(&manifest.join("../tracker/script.js"), SourceType::cjs());
    write_with_gzip(&out.join("script.min.js"), tracker.as_bytes());
    // The dashboard is an ES module, so its top-level names are private and mangled too.
    let dashboard = minify(&manifest.join("../dashboard/app.js"), SourceType::mjs());
    write_with_gzip(&out.join("app.min.js"), dashboard.as_bytes());
    // The admins' pages, a second module that app.js imports when one is opened.
    let admin = minify(&manifest.join("../dashboard/admin.js"), SourceType::mjs());
    write_with_gzip(&out.join("admin.min.js"), admin.as_bytes());
    for file in ["app.css", "index.html"] {
        let path = manifest.join("../dashboard").join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        let text =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        write_with_gzip(&out.join(file), &text);
    }
}

/// The minified code of a JavaScript file.
fn minify(source_path: &Path, source_type: SourceType) -> String {
    println!("cargo:rerun-if-changed={}", source_path.display());
    let source = std::fs::read_to_string(source_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", source_path.display()));
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, &source, source_type).parse();
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
    Codegen::new()
        .with_options(CodegenOptions {
            minify: true,
            comments: CommentOptions::disabled(),
            ..CodegenOptions::default()
        })
        .with_scoping(minified.scoping)
        .build(&program)
        .code
}

/// Writes `bytes` to `path` and a gzip copy beside it (`path.gz`).
fn write_with_gzip(path: &Path, bytes: &[u8]) {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(bytes).expect("writing to memory");
    let gzipped = gzip.finish().expect("writing to memory");
    std::fs::write(path, bytes).expect("writing OUT_DIR");
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    std::fs::write(gz, &gzipped).expect("writing OUT_DIR");
}
