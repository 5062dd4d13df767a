//! `clasp pretrain` on the synthetic crops and their pseudo-labels: a run killed with SIGKILL
//! after a checkpoint and resumed ends with the same weights, optimiser state and DINO centre as
//! an uninterrupted run; an absurd teacher temperature is reported as collapse; a resume with
//! other settings is refused; with `--features mpi`, two processes under `mpirun` pre-train as one
//! process with the twofold batch does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use candle_core::Device;

use super::label_cache::{clasp, fixture, s};
use crate::common;

/// 20 training crops of 64×32 in batches of 4: 5 steps per epoch, 3 epochs, a checkpoint every
/// 5 steps.
const PRETRAIN: [&str; 15] = [
    "model.preset=nano",
    "pretrain.epochs=3",
    "pretrain.batch_size=4",
    "pretrain.crops.global_size=[64, 32]",
    "pretrain.crops.local_size=[32, 16]",
    "pretrain.crops.n_local=2",
    "pretrain.dino.out_dim=64",
    "pretrain.dino.hidden_dim=32",
    "pretrain.dino.bottleneck_dim=16",
    "pretrain.log_every=1",
    "optim.warmup_steps=3",
    "checkpoint.every=5",
    "checkpoint.keep_last=5",
    "model.prompts.text_dim=16",
    "pretrain.workers=2",
];

struct Labelled {
    data: PathBuf,
    labels: PathBuf,
    runs: PathBuf,
}

fn labelled() -> &'static Labelled {
    static L: OnceLock<Labelled> = OnceLock::new();
    L.get_or_init(|| {
        let f = fixture();
        let data = f.synth.path().join("reid/bounding_box_train");
        let labels = f.root.join("pretrain-labels");
        let (ok, log) = clasp(
            &[
                "label",
                "--teacher",
                s(&f.teacher),
                "--images",
                s(&data),
                "--out",
                s(&labels),
            ],
            &[],
        );
        assert!(ok, "{log}");
        Labelled {
            data,
            labels,
            runs: f.root.join("runs"),
        }
    })
}

fn pretrain_cmd(run: &str, extra: &[&str]) -> Command {
    let l = labelled();
    let mut cmd = Command::new(common::plugin_libs::clasp_exe());
    cmd.args(["pretrain", "--data", s(&l.data), "--labels", s(&l.labels)]);
    cmd.args(extra);
    for set in PRETRAIN.iter().map(|s| s.to_string()).chain([
        format!("run.dir=\"{}\"", s(&l.runs)),
        format!("run.name=\"{run}\""),
    ]) {
        cmd.args(["--set", &set]);
    }
    cmd
}

fn run_to_end(run: &str, extra: &[&str], sets: &[&str]) -> (bool, String) {
    let mut cmd = pretrain_cmd(run, extra);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn checkpoint(run: &str, step: u64) -> PathBuf {
    labelled()
        .runs
        .join(run)
        .join("checkpoints")
        .join(format!("step_{step:08}"))
}

fn tensors(dir: &Path) -> BTreeMap<String, candle_core::Tensor> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            for (k, v) in candle_core::safetensors::load(&path, &Device::Cpu).unwrap() {
                out.insert(format!("{file}:{k}"), v);
            }
        }
    }
    out
}

#[test]
fn a_killed_and_resumed_run_ends_where_an_uninterrupted_one_does() {
    // A: 15 steps straight.
    let (ok, log) = run_to_end("straight", &[], &[]);
    assert!(ok, "{log}");
    assert!(log.contains("15 steps"), "{log}");
    assert!(log.contains("no collapse"), "{log}");
    let metrics = std::fs::read_to_string(labelled().runs.join("straight/metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    for key in [
        "loss_ssl",
        "loss_part",
        "loss_attr",
        "teacher_entropy",
        "kl",
    ] {
        assert!(
            last[key].as_f64().is_some_and(f64::is_finite),
            "{key}: {last}"
        );
    }
    assert_eq!(last["gates"]["part"].as_array().unwrap().len(), 4, "{last}");
    for plot in ["curves.png", "gates.png"] {
        assert!(
            labelled().runs.join("straight").join(plot).is_file(),
            "{plot}"
        );
    }

    // A rerun of a finished run without --resume or --overwrite is refused and writes nothing.
    let (ok, log) = run_to_end("straight", &[], &["pretrain.epochs=1"]);
    assert!(!ok && log.contains("already holds a run"), "{log}");
    assert_eq!(
        std::fs::read_to_string(labelled().runs.join("straight/metrics.jsonl")).unwrap(),
        metrics,
        "the refused rerun touched the first run's metrics"
    );

    // B: killed (SIGKILL) after its step-5 checkpoint, once it has logged step 7 (so the log
    // runs ahead of the checkpoint it will resume from), then resumed.
    let mut child = pretrain_cmd("killed", &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = checkpoint("killed", 5).join("manifest.json");
    let log_path = labelled().runs.join("killed/metrics.jsonl");
    let start = Instant::now();
    while !(first.exists()
        && std::fs::read_to_string(&log_path).is_ok_and(|t| t.contains("{\"step\":7,")))
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "run B ended before it could be killed"
        );
        assert!(start.elapsed() < Duration::from_secs(300), "no checkpoint");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !checkpoint("killed", 10).exists(),
        "run B reached its next checkpoint before it was killed: the test did not interrupt it"
    );
    let (ok, log) = run_to_end("killed", &["--resume"], &[]);
    assert!(ok, "{log}");
    assert!(log.contains("resumed from"), "{log}");
    // The resumed log has every step once, in order, as the uninterrupted one.
    let steps = |run: &str| -> Vec<u64> {
        let steps = common::logged(&labelled().runs.join(run), "step");
        steps.iter().map(|s| s.as_u64().unwrap()).collect()
    };
    assert_eq!(steps("killed"), steps("straight"));

    let (a, b) = (
        tensors(&checkpoint("straight", 15)),
        tensors(&checkpoint("killed", 15)),
    );
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the checkpoints hold different tensors"
    );
    for (k, va) in &a {
        let diff = common::max_abs_diff(va, &b[k]);
        assert!(diff <= 1e-6, "{k}: max abs diff {diff}");
    }
    // Training moved the weights (the comparison is not between two untouched models).
    let step5 = tensors(&checkpoint("straight", 5));
    let key = "student.safetensors:blocks.0.attn.qkv.weight";
    assert!(common::max_abs_diff(&step5[key], &a[key]) > 1e-6);

    // The gradient-conflict analysis reads the checkpoint and its run's config.
    let out = Command::new(common::plugin_libs::clasp_exe())
        .args(["analyze", "grad-conflict", "--batches", "2", "--checkpoint"])
        .arg(checkpoint("straight", 15))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains("ssl·part") && log.contains("part·attr"),
        "{log}"
    );
    let table: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(labelled().runs.join("straight/grad_conflict.json")).unwrap(),
    )
    .unwrap();
    let rows = table[0]["cosine"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "4 blocks and all shared parameters");
    for v in rows.iter().flat_map(|r| r.as_array().unwrap()) {
        let c = v.as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&c), "cosine {c}");
    }
    assert!(labelled().runs.join("straight/grad_conflict.png").is_file());

    // Other settings are refused on resume, naming why.
    // The run's resolved config stays the one that wrote it, so its advice works.
    let resolved = labelled().runs.join("killed/config.resolved.toml");
    let before = std::fs::read_to_string(&resolved).unwrap();
    let (ok, log) = run_to_end("killed", &["--resume"], &["pretrain.dino.student_temp=0.2"]);
    assert!(
        !ok && log.contains("holds a run of other settings")
            && log.contains("`pretrain.dino.student_temp` (saved ")
            && log.contains("now 0.2)"),
        "{log}"
    );
    assert_eq!(std::fs::read_to_string(&resolved).unwrap(), before);
}

#[test]
fn an_absurd_teacher_temperature_is_reported_as_collapse() {
    let (ok, log) = run_to_end(
        "collapsed",
        &[],
        &[
            "pretrain.epochs=1",
            "pretrain.dino.teacher_temp=100.0",
            "pretrain.dino.warmup_teacher_temp=100.0",
        ],
    );
    assert!(ok, "{log}");
    assert!(log.contains("COLLAPSE") && log.contains("uniform"), "{log}");
    let metrics = std::fs::read_to_string(labelled().runs.join("collapsed/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"collapse\":\"uniform"), "{metrics}");
}

/// `clasp pretrain --init CKPT`: the student starts from the checkpoint, its prompts excepted
/// (seeded as the run configures them) — at an LR of 1e-12 the pre-trained student is the
/// checkpoint (Adam moves a weight by about the LR per step: 5e-12 here).
#[test]
fn pretraining_starts_from_the_init_checkpoint_except_its_prompts() {
    let init = labelled().runs.join("init-ck");
    let (ok, log) = clasp(
        &["init", "--out", s(&init)],
        &[
            "model.preset=nano",
            "model.prompts.text_dim=16",
            "run.seed=7",
        ],
    );
    assert!(ok, "{log}");
    let lr0 = ["pretrain.epochs=1", "optim.lr=1e-12", "optim.min_lr=1e-12"];
    let (ok, log) = run_to_end("from-init", &["--init", s(&init)], &lr0);
    assert!(ok, "{log}");
    let student = tensors(&checkpoint("from-init", 5));
    let start = tensors(&init);
    let (mut compared, mut prompt_gap) = (0, 0f64);
    for (k, v) in &start {
        let name = k.strip_prefix("model.safetensors:").unwrap();
        if name.starts_with("prompts.text_embed.") {
            continue; // the task descriptions' embeddings, not weights
        }
        let ours = &student[&format!("student.safetensors:{name}")];
        let diff = common::max_abs_diff(v, ours);
        match name.starts_with("prompts.") {
            true => prompt_gap = prompt_gap.max(diff),
            false => assert!(diff < 1e-9, "{name}: {diff}"),
        }
        compared += 1;
    }
    assert!(compared > 50, "{compared} tensors");
    // The prompt projection is drawn from the run's seed (7 for the checkpoint, 0 here).
    assert!(prompt_gap > 1e-6, "the checkpoint's prompts were taken");
    // Without --init the student starts elsewhere (the comparison can fail).
    let (ok, log) = run_to_end("no-init", &[], &lr0);
    assert!(ok, "{log}");
    let fresh = tensors(&checkpoint("no-init", 5));
    let key = "blocks.0.attn.qkv.weight";
    let diff = common::max_abs_diff(
        &fresh[&format!("student.safetensors:{key}")],
        &start[&format!("model.safetensors:{key}")],
    );
    assert!(diff > 1e-6);
}

/// `pretrain.init` made for a model that computes otherwise (a pre-norm, as from CLIP) is
/// refused by key before any step, not loaded into a model that would ignore its pre-norm.
#[test]
fn an_init_checkpoint_of_another_computation_is_refused_by_key() {
    let init = labelled().runs.join("init-prenorm");
    let (ok, log) = clasp(
        &["init", "--out", s(&init)],
        &[
            "model.preset=nano",
            "model.prompts.text_dim=16",
            "model.pre_norm=true",
        ],
    );
    assert!(ok, "{log}");
    let (ok, log) = run_to_end(
        "from-prenorm",
        &["--init", s(&init)],
        &["pretrain.epochs=1"],
    );
    assert!(!ok);
    assert!(log.contains("model.pre_norm: false vs true"), "{log}");
    // Refused before any step: no checkpoint.
    let checkpoints = labelled().runs.join("from-prenorm/checkpoints");
    let saved = std::fs::read_dir(&checkpoints).map_or(0, |d| d.count());
    assert_eq!(saved, 0, "{}", checkpoints.display());
}

/// `run.precision = "bf16"` (products in bf16, weights and AdamW in f32): 15 steps of the whole
/// pre-training (DINO + part + attribute losses, PC-MoE) log every loss within
/// `BF16_LOSS_TOL` of the f32 run's, and not equal to it (the products did run in bf16).
#[test]
fn pretraining_in_bf16_follows_the_f32_losses() {
    // Measured here: the largest gap over the 15 steps and four terms is 5.8e-3 (bf16 rounds to
    // 8 significant bits, ~4e-3 relative); 2 % leaves a factor of ~3.
    const BF16_LOSS_TOL: f64 = 0.02;
    let terms = ["loss", "loss_ssl", "loss_part", "loss_attr"];
    let losses = |run: &str| -> Vec<Vec<f64>> {
        let dir = labelled().runs.join(run);
        let by_term = terms.map(|t| common::logged(&dir, t));
        (0..by_term[0].len())
            .map(|i| by_term.iter().map(|t| t[i].as_f64().unwrap()).collect())
            .collect()
    };
    for (run, precision) in [("prec-f32", "f32"), ("prec-bf16", "bf16")] {
        let (ok, log) = run_to_end(run, &[], &[&format!("run.precision=\"{precision}\"")]);
        assert!(ok, "{log}");
    }
    let (f32_run, bf16_run) = (losses("prec-f32"), losses("prec-bf16"));
    assert_eq!(f32_run.len(), 15);
    assert_eq!(bf16_run.len(), 15);
    let mut worst = 0f64;
    for (step, (a, b)) in f32_run.iter().zip(&bf16_run).enumerate() {
        for (term, (x, y)) in terms.iter().zip(a.iter().zip(b)) {
            let rel = (x - y).abs() / x.abs().max(1e-6);
            assert!(
                rel <= BF16_LOSS_TOL,
                "step {}, {term}: f32 {x} vs bf16 {y}",
                step + 1
            );
            worst = worst.max(rel);
        }
    }
    eprintln!("bf16 vs f32: largest relative loss gap {worst:.2e}");
    assert!(
        worst > 0.0,
        "the bf16 run logged the f32 run's losses exactly"
    );
}

/// Two processes under `mpirun` with batches of 2 end where one process ends with batches of 4,
/// and where one process ends accumulating two batches of 2: the same weights, EMA teacher,
/// optimiser moments and DINO centre (summed over both processes' images before it moves).
#[cfg(feature = "mpi")]
#[test]
fn two_processes_pretrain_like_one_with_the_twofold_batch() {
    // Adam's eps at 1e-3, as in the fine-tuning tests: gradients that are zero in exact
    // arithmetic (rounding noise) then take no LR-sized steps.
    let eps = "optim.eps=1e-3";
    let run = |name: &str, two_ranks: bool, sets: &[&str]| {
        let mut cmd = pretrain_cmd(name, &[]);
        if two_ranks {
            let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
            cmd = common::mpirun_two();
            cmd.args(args);
        }
        for set in sets.iter().chain([&eps]) {
            cmd.args(["--set", set]);
        }
        common::succeeded(cmd.output().unwrap())
    };
    let log = run("dp-ranks", true, &["pretrain.batch_size=2"]);
    assert!(log.contains("rank 1 of 2 processes"), "{log}");
    run("dp-four", false, &[]);
    run(
        "dp-accumulated",
        false,
        &["pretrain.batch_size=2", "pretrain.accumulate=2"],
    );
    run(
        "dp-two",
        false,
        &["pretrain.batch_size=2", "pretrain.epochs=1"],
    );

    // Summed gradients differ from one process's by rounding; AdamW's normalised steps keep
    // the weights within a hundredth of the LR (5e-4) after 15 steps.
    let tolerance = 5e-6;
    let ranks = tensors(&checkpoint("dp-ranks", 15));
    for other in ["dp-four", "dp-accumulated"] {
        let b = tensors(&checkpoint(other, 15));
        assert_eq!(
            ranks.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>()
        );
        for (k, va) in &ranks {
            let diff = common::max_abs_diff(va, &b[k]);
            assert!(diff <= tolerance, "{other}, {k}: max abs diff {diff}");
        }
    }
    // Plain batches of 2 take other steps: the comparison can fail.
    let two = tensors(&checkpoint("dp-two", 10));
    let key = "student.safetensors:blocks.0.attn.qkv.weight";
    let five = tensors(&checkpoint("dp-four", 5));
    assert!(common::max_abs_diff(&two[key], &five[key]) > tolerance);
    // The logs agree (each step's loss is the mean over both processes' images).
    let losses = |run: &str| -> Vec<f64> {
        let losses = common::logged(&labelled().runs.join(run), "loss");
        losses.iter().map(|l| l.as_f64().unwrap()).collect()
    };
    let (a, b) = (losses("dp-ranks"), losses("dp-four"));
    assert_eq!(a.len(), 15);
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-4 * y.abs(), "{a:?} vs {b:?}");
    }
}
