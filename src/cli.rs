//! Command line: subcommands and the flags that override job keys.

use crate::job::DeviceChoice;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "maskomaly",
    version,
    about = "Zero-shot anomaly segmentation from Mask2Former mask queries (Maskomaly, BMVC 2023), as a batch runner.",
    long_about = "Zero-shot anomaly segmentation from Mask2Former mask queries (Maskomaly, BMVC 2023), as a batch runner.\n\n\
                  `maskomaly run` with no arguments reads every image under /input and writes one score map per \
                  image to /output (the published container's contract). A job file (YAML) chooses the dataset, \
                  checkpoint, method parameters and outputs; flags override it. Logs and progress go to stderr \
                  (RUST_LOG=debug for more).",
    after_help = crate::diagnostic::help_table(),
)]
pub struct Cli {
    /// Only errors on stderr; no progress bar.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score every input image and write HDF5 / PNG maps and a manifest.
    #[command(after_help = crate::diagnostic::help_table())]
    Run(RunArgs),
    /// Generate sample images and a tiny model, then run the whole pipeline on them (no network).
    Demo {
        /// Folder for the demo's inputs, model and outputs.
        #[arg(long, default_value = "maskomaly-demo")]
        dir: PathBuf,
    },
    /// Combine the shard manifests of an array job into OUTPUT/manifest.json; name missing items.
    #[command(
        after_help = "Exit codes: 0 every item produced once, 1 items missing or in conflict, 65/66/74 errors."
    )]
    Merge(MergeArgs),
    /// Re-hash every output listed in OUTPUT/manifest.json; report missing, changed and extra files.
    #[command(
        after_help = "Exit codes: 0 clean, 1 mismatch (or the run is not complete), 66 no manifest."
    )]
    Verify(VerifyArgs),
    /// Print the version, the libtorch it runs on, and whether CUDA support loaded and sees a GPU.
    Info,
    /// Validate a job file and print it with every default filled in.
    CheckJob {
        /// The job file (YAML).
        job: PathBuf,
    },
    /// Run the network on one image and save the preprocessed input and raw outputs (safetensors:
    /// `pixel_values` [1,3,Hp,Wp], `pred_logits` [Q,K+1], `pred_masks` [Q,Hp/4,Wp/4]).
    Forward {
        /// Job file (YAML); without it the default job is used.
        #[arg(long)]
        job: Option<PathBuf>,
        /// The image.
        #[arg(long)]
        image: PathBuf,
        /// The safetensors file to write.
        #[arg(long)]
        out: PathBuf,
        /// Checkpoint file (overrides checkpoint.path, as for `run`).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Device (overrides runtime.device).
        #[arg(long, value_enum)]
        device: Option<DeviceArg>,
    },
    /// Evaluate written predictions against the dataset's labels: results.json, results.txt,
    /// per_frame.csv, PR/ROC curves, overlays, report.html, and a summary table on stdout. With
    /// several scores (`method.scores`), each is evaluated into OUTPUT/<score>/ and all are compared:
    /// a table on stdout, results.json, comparison.csv, pr_curves.png and roc_curves.png.
    Eval(EvalArgs),
    /// Rank the mask queries by their overlap with the anomaly labels of a labelled dataset and write
    /// the ranking as YAML for `method.anomaly_queries_file`.
    DiscoverQueries(DiscoverArgs),
    /// Checkpoint tools.
    #[command(subcommand)]
    Checkpoint(CheckpointCommand),
    /// Write the tiny TorchScript test model (100 queries, 19 classes + void) to a file.
    #[command(hide = true)]
    TinyModel { out: PathBuf },
}

/// `maskomaly eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    #[arg(long)]
    pub job: PathBuf,
    /// Folder holding the predictions (default: the job's output.root).
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Folder for the reports (default: <predictions>/eval).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// `total` (pool pixels, ignore dropped) or `image` (per frame, nan-mean); default from the dataset.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Also compute the SegmentMeIfYouCan benchmark's binned pixel metrics and component
    /// metrics, as road-anomaly-benchmark computes them at commit 1c7804e (docs/eval.md).
    #[arg(long)]
    pub smiyc: bool,
    /// Skip the per-frame overlay images.
    #[arg(long)]
    pub no_overlays: bool,
    /// Skip report.html (the page with the run, metrics, curves, a gallery and the frame table).
    #[arg(long)]
    pub no_report: bool,
    /// Evaluate only this score of a multi-score run (default: every score found, compared).
    #[arg(long, value_parser = parse_score)]
    pub score: Option<crate::scores::ScoreKind>,
}

/// `maskomaly discover-queries`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiscoverArgs {
    #[arg(long)]
    pub job: PathBuf,
    #[arg(long)]
    pub output: PathBuf,
    /// Use the corrected IoU instead of the reference's (which subtracts the image's ignore count).
    #[arg(long)]
    pub corrected_iou: bool,
    /// How many of the best queries go into `selected`.
    #[arg(long, default_value_t = 4)]
    pub select: usize,
    /// Only the first N frames.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Compare a checkpoint's tensors with the model it is meant for: missing, unexpected, wrong
    /// shape or dtype, and the keys that are expected to be unused (with the reason). Exit 0 when it
    /// loads, 78 when it does not.
    Inspect {
        /// A detectron2 `.pkl` / `.safetensors`, or a Hugging Face folder / `model.safetensors`.
        file: PathBuf,
        #[arg(long, value_enum, default_value = "detectron2")]
        format: FormatArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Total,
    Image,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Detectron2,
    Hf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Job file (YAML); without it the default Maskomaly Swin-L Cityscapes job is used.
    #[arg(long)]
    pub job: Option<PathBuf>,
    /// Input folder (overrides dataset.root).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Output folder (overrides output.root).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Checkpoint file (overrides checkpoint.path; the job's checkpoint.url and sha256 then no
    /// longer apply).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Device (overrides runtime.device).
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    /// Process only the first N items of the sorted input list.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Redo items whose outputs are already complete (default: skip them, hash-checked).
    #[arg(long)]
    pub overwrite: bool,
    /// Print the run's summary as JSON on stdout (counts, items/s, mean ms per stage, queues).
    #[arg(long)]
    pub json: bool,
    /// Wait for the GPU around each stage so that its time is its own (the stages then no longer
    /// overlap on the device; no effect on the CPU).
    #[arg(long)]
    pub profile: bool,
    #[command(flatten)]
    pub shard: ShardArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
    Auto,
}

impl From<DeviceArg> for DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Cuda => DeviceChoice::Cuda,
            DeviceArg::Auto => DeviceChoice::Auto,
        }
    }
}

/// `maskomaly merge` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// Output root of the array job (holds `manifests/`).
    pub output: PathBuf,
    /// Input root to list for the expected items (default: the root recorded in the manifests).
    #[arg(long)]
    pub input: Option<PathBuf>,
}

/// `maskomaly verify` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Output root holding `manifest.json`.
    pub output: PathBuf,
    /// Also run the job again into a temporary folder and compare the maps.
    #[arg(long)]
    pub rerun: bool,
    /// Input root (default: the root recorded in the manifest): every input is checked against
    /// its recorded size and time, else its SHA-256; `--rerun` reads it too.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Checkpoint for `--rerun` (default: the one recorded; its SHA-256 must match the record).
    #[arg(long, requires = "rerun")]
    pub checkpoint: Option<PathBuf>,
    /// Device for `--rerun` (default: cpu).
    #[arg(long, requires = "rerun", default_value = "cpu")]
    pub device: String,
    /// Largest accepted |difference| between map values (default: 0 on cpu, 1e-3 on cuda).
    #[arg(long, requires = "rerun")]
    pub tolerance: Option<f64>,
    /// Keep the rerun's folder (its path is printed).
    #[arg(long, requires = "rerun")]
    pub keep: bool,
}

impl VerifyArgs {
    /// What the library's `verify` needs from these flags.
    pub fn request(&self) -> crate::provenance::verify::Request {
        use crate::provenance::verify::{Request, Rerun};
        Request {
            output: self.output.clone(),
            input: self.input.clone(),
            rerun: self.rerun.then(|| Rerun {
                checkpoint: self.checkpoint.clone(),
                device: self.device.clone(),
                tolerance: self.tolerance,
                keep: self.keep,
            }),
        }
    }
}

/// `--shard` / `--shards` of `maskomaly run` (flattened into its arguments).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ShardArgs {
    /// Process only shard K of N (0-based) of the sorted input listing. Default: from the batch
    /// system (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Number of shards, for engines that export only an index (Kubernetes, AWS Batch); also
    /// read from MASKOMALY_SHARDS.
    #[arg(long, value_name = "N")]
    pub shards: Option<String>,
}

/// A score name of `method.scores`.
fn parse_score(s: &str) -> Result<crate::scores::ScoreKind, String> {
    crate::scores::ScoreKind::from_name(s).ok_or_else(|| {
        format!(
            "unknown score `{s}` (valid: {})",
            crate::scores::ScoreKind::valid_names()
        )
    })
}
