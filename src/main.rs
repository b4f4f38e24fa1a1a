//! The `portcullis` binary: parses the command line and runs it.

use clap::Parser;

/// mimalloc: the gateway allocates and frees many small objects on several threads (request
/// handling, Rego evaluation, the audit writer); glibc's allocator spent a third of the CPU of a
/// loaded gateway in malloc, free and consolidation (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    quiet_library_backtraces();
    let cli = portcullis::cli::Cli::parse();
    match portcullis::cli::run(cli) {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            // Usage errors and unreadable input, as kubectl and the lint command use it.
            std::process::ExitCode::from(2)
        }
    }
}

/// Errors created inside libraries (anyhow errors, which regorus creates as part of ordinary Rego
/// evaluation) capture a full backtrace each when `RUST_BACKTRACE` is set and
/// `RUST_LIB_BACKTRACE` is not: that tripled the cost of an AdmissionReview with five Rego
/// policies (see BENCHMARKS.md). Unless the user set `RUST_LIB_BACKTRACE` themselves, turn
/// library backtraces off; panics still print theirs as `RUST_BACKTRACE` asks.
#[allow(unsafe_code)]
fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists, so nothing can
        // read the environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}
