//! `maskomaly`: parse the command line, set up logging, run the command, print a failure (uv
//! style: `error:`, one `caused by:` per source, `hint:`) and exit with its code.

use clap::Parser;
use maskomaly::cli::Cli;
use maskomaly::diagnostic::ExitCode;

fn main() {
    maskomaly::tune_allocator();
    // Before anything asks libtorch about CUDA.
    let cuda = maskomaly::cuda::preload();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                ExitCode::Usage.code()
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    init_logging(cli.quiet, cli.verbose);
    maskomaly::progress::set_quiet(cli.quiet);
    match &cuda {
        Ok(p) => log::debug!("CUDA support loaded from {}", p.display()),
        Err(e) => log::debug!("no CUDA support (CPU only): {e}"),
    }
    // Per-item work has its own guard; a panic that still gets here is a bug, reported as one
    // (exit 70) rather than as Rust's undocumented 101.
    let code = match std::panic::catch_unwind(|| maskomaly::commands::dispatch(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(failure)) => {
            eprint!("{}", failure.render());
            failure.exit_code()
        }
        Err(_) => {
            eprintln!(
                "error: internal error (a bug; the panic message is above), please report it"
            );
            ExitCode::Software
        }
    };
    std::process::exit(code.code());
}

/// `-q`: errors only (it wins over RUST_LOG); `-v`: debug; `-vv`: trace.
fn init_logging(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let mut logger = if quiet {
        let mut b = env_logger::Builder::new();
        b.parse_filters(level);
        b
    } else {
        env_logger::Builder::from_env(
            env_logger::Env::default().default_filter_or(format!("maskomaly={level},warn")),
        )
    };
    logger.format_timestamp_secs().init();
}
