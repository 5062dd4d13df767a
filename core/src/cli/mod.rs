//! The `clasp` command line: one subcommand per job of DESIGN §9.

pub mod analyze;
pub mod bench;
pub mod bench_data;
pub mod compare;
pub mod config_cmd;
pub mod device_check;
pub mod embed;
pub mod eval;
pub mod export;
pub mod finetune;
pub mod init;
pub mod label;
pub mod output;
pub mod plugins;
pub mod predict;
pub mod pretrain;
pub mod probe;
pub mod quickstart;
pub mod synth;
pub mod teacher_embed;
pub mod teacher_eval;
pub mod teacher_train;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigSources};

#[derive(Parser, Debug)]
#[command(
    name = "clasp",
    version,
    about = "CLASP-rs: CLIP-guided adaptable self-supervised pre-training for human-centric vision"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// TOML config file, layered over the built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one key, applied last (repeatable): --set model.preset=tiny
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// More log output (-v debug, -vv trace); RUST_LOG wins when set.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    pub fn sources(&self) -> ConfigSources {
        ConfigSources {
            file: self.config.clone(),
            overrides: self.set.clone(),
            use_env: true,
            ..Default::default()
        }
    }

    pub fn load(&self) -> Result<Config> {
        self.sources().load()
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Render synthetic people in real dataset formats.
    Synth(synth::SynthArgs),
    /// Create a backbone checkpoint with random weights from a preset.
    Init(init::InitArgs),
    /// Train, evaluate or query the CLIP teacher.
    Teacher {
        #[command(subcommand)]
        command: TeacherCommand,
    },
    /// Write the part and attribute pseudo-label cache.
    Label(label::LabelArgs),
    /// CLIP-guided pre-training with PC-MoE.
    Pretrain(pretrain::PretrainArgs),
    /// Fine-tune a backbone on a task through its plugin.
    Finetune(finetune::FinetuneArgs),
    /// Scores a frozen backbone's features through a task plugin's head trained on them alone.
    Probe(finetune::TaskRunArgs),
    /// Evaluate a task checkpoint on a split of a dataset.
    Eval(eval::EvalArgs),
    /// Predict and draw with a task checkpoint.
    Predict(predict::PredictArgs),
    /// Write CLS and pooled patch features of a folder of images.
    Embed(embed::EmbedArgs),
    /// Export a backbone to another ecosystem (timm).
    Export(export::ExportArgs),
    /// List or inspect task plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Analyses of a checkpoint.
    Analyze {
        #[command(subcommand)]
        command: AnalyzeCommand,
    },
    /// Throughput and memory benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Check the configured device (`run.device`) against the CPU: ops and training steps.
    DeviceCheck(device_check::DeviceCheckArgs),
    /// Show the resolved configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The main job on built-in synthetic data, end to end.
    Quickstart(quickstart::QuickstartArgs),
}

#[derive(Subcommand, Debug)]
pub enum TeacherCommand {
    /// Train a small CLIP on synthetic people and captions.
    Train(teacher_train::TeacherTrainArgs),
    /// Measure pseudo-label quality against synthetic ground truth.
    Eval(teacher_eval::TeacherEvalArgs),
    /// Image and text embeddings from a CLIP folder.
    Embed(teacher_embed::TeacherEmbedArgs),
}

#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// List discovered plugins.
    List,
    /// Show one plugin's spec: file, sha256, labels, metrics, config schema, heads.
    Inspect {
        /// Task name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AnalyzeCommand {
    /// Cosine similarity between per-task gradients on shared parameters.
    GradConflict(analyze::GradConflictArgs),
    /// Probe or fine-tuning runs of one task compared with bootstrap intervals over the test
    /// people, beside the image-blind levels.
    Compare(compare::CompareArgs),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Forward + backward + AdamW step of the backbone, with and without PC-MoE.
    #[command(alias = "model")]
    Train(bench::BenchModelArgs),
    /// Forward pass of the backbone without autograd: plain, PC-MoE, PC-MoE gate-folded.
    Infer(bench::BenchModelArgs),
    /// Synthetic rendering and data-loader throughput per core.
    Data(bench_data::BenchDataArgs),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the resolved configuration as TOML.
    Show,
}

impl Command {
    /// Whether the command runs on every process of a data-parallel job.
    pub fn is_data_parallel(&self) -> bool {
        matches!(
            self,
            Command::Finetune(_) | Command::Pretrain(_) | Command::Label(_)
        )
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    let world = crate::distributed::world();
    if world.size > 1 && !cli.command.is_data_parallel() {
        anyhow::bail!(
            "started as one of {} processes: of the `clasp` commands only `pretrain`, `finetune` \
             and `label` run on several processes so far; run this one without mpirun",
            world.size
        );
    }
    match cli.command {
        Command::Synth(args) => synth::run(g, args),
        Command::Init(args) => init::run(g, args),
        Command::Teacher { command } => match command {
            TeacherCommand::Train(args) => teacher_train::run(g, args),
            TeacherCommand::Eval(args) => teacher_eval::run(g, args),
            TeacherCommand::Embed(args) => teacher_embed::run(g, args),
        },
        Command::Label(args) => label::run(g, args),
        Command::Pretrain(args) => pretrain::run(g, args),
        Command::Finetune(args) => finetune::run(g, args),
        Command::Probe(args) => probe::run(g, args),
        Command::Eval(args) => eval::run(g, args),
        Command::Predict(args) => predict::run(g, args),
        Command::Embed(args) => embed::run(g, args),
        Command::Export(args) => export::run(g, args),
        Command::Plugins { command } => match command {
            PluginsCommand::List => plugins::list(g),
            PluginsCommand::Inspect { name } => plugins::inspect(g, &name),
        },
        Command::Analyze {
            command: AnalyzeCommand::GradConflict(args),
        } => analyze::grad_conflict(g, args),
        Command::Analyze {
            command: AnalyzeCommand::Compare(args),
        } => compare::run(g, args),
        Command::Bench {
            command: BenchCommand::Train(args),
        } => bench::run(g, bench::BenchMode::Train, args),
        Command::Bench {
            command: BenchCommand::Infer(args),
        } => bench::run(g, bench::BenchMode::Infer, args),
        Command::Bench {
            command: BenchCommand::Data(args),
        } => bench_data::run(args),
        Command::DeviceCheck(args) => device_check::run(g, args),
        Command::Config {
            command: ConfigCommand::Show,
        } => config_cmd::show(g),
        Command::Quickstart(args) => quickstart::run(g, args),
    }
}

/// `run.precision` reaches the backbone only: a command that runs the teacher says it is unused.
fn warn_unused_precision(config: &crate::config::Config, command: &str) {
    if config.run.precision != crate::model::Precision::F32 {
        tracing::warn!(
            "run.precision = {} is not used by `clasp {command}`: the teacher runs in f32",
            config.run.precision
        );
    }
}
