//! `maskomaly`: parse the command line, set up logging, call the library, map the outcome to an
//! exit code.

use anyhow::Context;
use clap::Parser;
use maskomaly::cli::{CheckpointCommand, Cli, Command, FormatArg, ModeArg, RunArgs};
use maskomaly::exit::{Diagnose, ExitCode};
use maskomaly::job::Job;
use maskomaly::pipeline::{self, RunError, RunOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

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
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    // `-q` wins over RUST_LOG: nothing but errors.
    let mut logger = if cli.quiet {
        let mut b = env_logger::Builder::new();
        b.parse_filters(level);
        b
    } else {
        env_logger::Builder::from_env(
            env_logger::Env::default().default_filter_or(format!("maskomaly={level},warn")),
        )
    };
    logger.format_timestamp_secs().init();
    match &cuda {
        Ok(p) => log::debug!("CUDA support loaded from {}", p.display()),
        Err(e) => log::debug!("no CUDA support (CPU only): {e}"),
    }
    // Per-item work has its own guard; a panic that still gets here is a bug, reported as one
    // (exit 70) rather than as Rust's undocumented 101.
    let code = match std::panic::catch_unwind(|| dispatch(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            report(&e);
            e.downcast_ref::<RunError>()
                .map(RunError::exit_code)
                .unwrap_or(ExitCode::Config)
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

/// `maskomaly info`: what this binary runs on (used by the container tests as the CUDA probe).
fn info() {
    println!("maskomaly {}", env!("CARGO_PKG_VERSION"));
    if let Some(c) = pipeline::git_commit() {
        println!("commit: {c}");
    }
    println!("libtorch: {}", pipeline::libtorch_version());
    match maskomaly::cuda::status() {
        Some(Ok(p)) => println!("cuda support: loaded from {}", p.display()),
        Some(Err(e)) => println!("cuda support: not loaded ({e})"),
        None => println!("cuda support: not probed"),
    }
    let n = tch::Cuda::device_count();
    println!("cuda devices: {n}");
    if n == 0 && maskomaly::cuda::status().is_some_and(|s| s.is_ok()) {
        println!("note: {}", maskomaly::cuda::unavailable_reason());
    }
    println!("cudnn: {}", tch::Cuda::cudnn_is_available());
}

/// `error:`, one `caused by:` line per source, then `hint:`.
fn print_diagnosed(e: &dyn Diagnose) {
    eprintln!("error: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        eprintln!("caused by: {c}");
        cause = c.source();
    }
    if let Some(h) = e.hint() {
        eprintln!("hint: {h}");
    }
}

fn report(e: &anyhow::Error) {
    eprintln!("error: {e:#}");
    if let Some(hint) = e.downcast_ref::<RunError>().and_then(RunError::hint) {
        eprintln!("hint: {hint}");
    }
}

fn load_job(path: Option<&Path>) -> Result<Job, RunError> {
    match path {
        Some(p) => {
            let mut job = Job::load(p).map_err(|e| RunError::Config(e.to_string()))?;
            // Discovered queries (method.anomaly_queries_file) replace the listed ones.
            maskomaly::eval::discover::resolve_anomaly_queries(&mut job, p)
                .map_err(|e| RunError::Config(format!("{}: {e}", p.display())))?;
            Ok(job)
        }
        None => Ok(Job::default()),
    }
}

fn apply_overrides(job: &mut Job, args: &RunArgs) -> Result<(), RunError> {
    if let Some(p) = &args.input {
        job.dataset.root = p.clone();
    }
    if let Some(p) = &args.output {
        job.output.root = p.clone();
    }
    if let Some(p) = &args.checkpoint {
        // A file given on the command line brings its own format where its name implies one.
        if let Some(f) = maskomaly::job::CheckpointFormat::guess(p) {
            job.checkpoint.format = f;
        }
        job.checkpoint.path = p.clone();
        job.checkpoint.url = None;
        job.checkpoint.sha256 = None;
    }
    if let Some(d) = args.device {
        job.runtime.device = d.into();
    }
    job.validate(None, Path::new("(command line)"))
        .map_err(|e| RunError::Config(e.to_string()))
}

fn run(args: RunArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let mut job = load_job(args.job.as_deref())?;
    apply_overrides(&mut job, &args)?;
    let shard = match args.shard.resolve() {
        Ok(r) => {
            // Said only when sharding, so that an ordinary run starts quietly.
            if r.shard.is_some() {
                log::info!("{}", r.reason);
            } else {
                log::debug!("{}", r.reason);
            }
            r.shard
        }
        Err(e) => {
            print_diagnosed(&e);
            return Ok(e.exit_code());
        }
    };
    let stop = Arc::new(AtomicUsize::new(0));
    pipeline::install_signal_handlers(&stop).context("cannot install signal handlers")?;
    let opts = RunOptions {
        overwrite: args.overwrite,
        limit: args.limit,
        command_line: std::env::args().collect(),
        quiet,
        shard,
    };
    let summary = pipeline::run(&job, &opts, stop)?;
    // Shard runs get their crate from `maskomaly merge`.
    if shard.is_none() {
        let crate_written = maskomaly::merge::read_manifest(&summary.manifest)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                maskomaly::rocrate::write(&job.output.root, &m).map_err(|e| e.to_string())
            });
        if let Err(e) = crate_written {
            log::warn!("no RO-Crate metadata: {e}");
        }
    }
    if !quiet {
        eprint!("{}", summary.table(&job.output.root));
    }
    if let Some(sig) = summary.signal {
        log::warn!(
            "stopped by signal {sig}; finished outputs are kept, rerun the same command to resume"
        );
    }
    if args.json {
        println!("{}", summary.to_json(job.runtime.queue_depth));
    }
    Ok(summary.exit_code())
}

fn demo(dir: PathBuf, quiet: bool) -> anyhow::Result<ExitCode> {
    let (job, job_path) = maskomaly::demo::prepare(&dir).map_err(|e| RunError::CantCreate {
        path: e.path,
        message: e.message,
    })?;
    let code = run(
        RunArgs {
            job: Some(job_path.clone()),
            input: None,
            output: None,
            checkpoint: None,
            device: None,
            limit: None,
            overwrite: true,
            json: false,
            shard: Default::default(),
        },
        quiet,
    )?;
    if code != ExitCode::Ok {
        return Ok(code);
    }
    let eval_dir = job.output.root.join("eval");
    let opts = maskomaly::eval::EvalOptions {
        progress: !quiet,
        print_summary: !quiet,
        ..Default::default()
    };
    maskomaly::eval::run_eval(&job, &job.output.root, &eval_dir, &opts)
        .map_err(|e| RunError::Data(e.to_string()))?;
    if !quiet {
        println!(
            "demo job: {}
score maps and heatmaps: {}
open the report: {}",
            job_path.display(),
            job.output.root.display(),
            eval_dir.join("report.html").display()
        );
    }
    Ok(code)
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run(args, cli.quiet),
        Command::Info => {
            info();
            Ok(ExitCode::Ok)
        }
        Command::Demo { dir } => demo(dir, cli.quiet),
        Command::Merge(args) => {
            match maskomaly::merge::merge(&args, &std::env::args().collect::<Vec<_>>()) {
                Ok(r) => {
                    eprint!("{}", r.render());
                    Ok(r.exit_code())
                }
                Err(e) => {
                    print_diagnosed(&e);
                    Ok(e.exit_code())
                }
            }
        }
        Command::Verify(args) => match maskomaly::verify::verify(&args) {
            Ok(r) => {
                eprint!("{}", r.render());
                Ok(r.exit_code())
            }
            Err(e) => {
                print_diagnosed(&e);
                Ok(e.exit_code())
            }
        },
        Command::CheckJob { job } => {
            let job = load_job(Some(&job))?;
            print!(
                "{}",
                serde_saphyr::to_string(&job).context("cannot serialise the job")?
            );
            Ok(ExitCode::Ok)
        }
        Command::Forward {
            job,
            image,
            out,
            checkpoint,
            device,
        } => {
            let mut job = load_job(job.as_deref())?;
            if let Some(c) = checkpoint {
                if let Some(f) = maskomaly::job::CheckpointFormat::guess(&c) {
                    job.checkpoint.format = f;
                }
                job.checkpoint.path = c;
                job.checkpoint.url = None;
            }
            if let Some(d) = device {
                job.runtime.device = d.into();
            }
            maskomaly::forward::forward_to_file(&job, &image, &out)?;
            println!("{}", out.display());
            Ok(ExitCode::Ok)
        }
        Command::Eval {
            job: job_path,
            predictions,
            output,
            mode,
            smiyc,
            no_overlays,
            no_report,
            score,
        } => {
            let job = load_job(Some(&job_path))?;
            let predictions = predictions.unwrap_or_else(|| job.output.root.clone());
            let output = output.unwrap_or_else(|| predictions.join("eval"));
            let opts = maskomaly::eval::EvalOptions {
                mode: mode.map(|m| match m {
                    ModeArg::Total => maskomaly::eval::Mode::Total,
                    ModeArg::Image => maskomaly::eval::Mode::Image,
                }),
                smiyc,
                overlays: !no_overlays,
                report: !no_report,
                progress: !cli.quiet,
                ..Default::default()
            };
            maskomaly::eval::compare::run_compare(&job, &predictions, &output, &opts, score)
                .map_err(|e| RunError::Data(e.to_string()))?;
            if no_report {
                log::info!("reports written to {}", output.display());
            } else {
                log::info!(
                    "reports written to {}; open {}",
                    output.display(),
                    output.join("report.html").display()
                );
            }
            Ok(ExitCode::Ok)
        }
        Command::DiscoverQueries {
            job: job_path,
            output,
            corrected_iou,
            select,
            limit,
        } => {
            let job = load_job(Some(&job_path))?;
            let opts = maskomaly::eval::discover::DiscoverOptions {
                iou: if corrected_iou {
                    maskomaly::eval::discover::IouVariant::Corrected
                } else {
                    maskomaly::eval::discover::IouVariant::Reference
                },
                select,
                ..Default::default()
            };
            let ranking = maskomaly::discover_cmd::discover_queries(&job, &output, &opts, limit)?;
            println!(
                "selected queries: {:?} (ranking over {} frames in {})",
                ranking.selected,
                ranking.frames,
                output.display()
            );
            Ok(ExitCode::Ok)
        }
        Command::Checkpoint(CheckpointCommand::Inspect { file, format }) => {
            let format = match format {
                FormatArg::Detectron2 => maskomaly::job::CheckpointFormat::Detectron2,
                FormatArg::Hf => maskomaly::job::CheckpointFormat::Hf,
            };
            let report = maskomaly::model::inspect(&file, format).map_err(RunError::from)?;
            println!("{report}");
            Ok(if report.is_ok() {
                ExitCode::Ok
            } else {
                ExitCode::Config
            })
        }
        Command::TinyModel { out } => {
            maskomaly::demo::write_tiny_model(&out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            Ok(ExitCode::Ok)
        }
    }
}
