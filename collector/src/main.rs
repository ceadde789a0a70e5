//! The `footfall` binary: parse the command line, set up logging, run the library.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: the ingest path allocates many small strings per
/// event, and glibc's malloc spent a sixth of the collector's time under load (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Every file Footfall creates holds visitors' data or secrets: its owner's alone, also
    // those an engine creates on its own (DuckDB's write-ahead log comes and goes).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    keep_memory_small();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

/// Before any thread starts: keeps the collector's resident memory close to what it uses
/// (BENCHMARKS.md, issue 17's third part: 151 MB of the process under load were huge pages).
fn keep_memory_small() {
    // Transparent huge pages: mimalloc asks for them on its arena, and then every touched
    // 2 MiB counts as resident although most of it is free.
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("warning: cannot turn transparent huge pages off: {e}");
    }
}

async fn run() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_env("FOOTFALL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = footfall::cli::Cli::parse();
    match footfall::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
