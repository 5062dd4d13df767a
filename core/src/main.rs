use clap::Parser;
use tracing_subscriber::EnvFilter;

use clasp_core::cli::{run, Cli};

// Every candle op allocates its output; mimalloc keeps freed buffers for reuse where glibc
// unmaps and re-faults them (measured in docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v3; libmimalloc-sys names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Keep freed pages mapped: a training step frees and reallocates the same buffers, and
    // returning them makes the kernel zero fresh pages every step (clear_page in the profile).
    // SAFETY: sets a process-wide allocator option before any thread starts; the option id is
    // mimalloc's and -1 is a valid value for it.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = Cli::parse();
    let default_level = match cli.global.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Colour codes only for a terminal that shows them (and never with NO_COLOR): a
        // redirected log must read as text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let outcome =
        clasp_core::distributed::init(cli.command.is_data_parallel()).and_then(|_| run(cli));
    if let Err(e) = &outcome {
        eprintln!("error: {e:#}");
    }
    // After the message: a failed rank of a job aborts the others here.
    clasp_core::distributed::finish(outcome.is_ok());
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::from(2),
    }
}
