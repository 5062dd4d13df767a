//! Data-parallel fine-tuning: `clasp finetune` under `mpirun -np 2` (a `clasp` built with
//! `--features mpi`) ends with the weights one process reaches with the twofold batch, or with
//! `finetune.accumulate = 2`; commands that are not data parallel yet are refused by name.
//! (Pre-training under `mpirun` is tested beside the other pre-training runs, in
//! `pipeline/pretrain.rs`.)
//! Run with `cargo test --workspace --features mpi` (needs Open MPI or MPICH and `mpirun`).
#![cfg(feature = "mpi")]

use std::path::Path;
use std::process::Command;

mod common;
use common::finetune_runs::{
    attribute_data, delivered_weights, first_listed_image, max_weight_gap, nano_finetune_args,
};
use common::plugin_libs::{clasp_exe, library};
use common::task_data::synth;
use common::{mpirun, mpirun_two, succeeded};

/// One epoch of `task` at LR `lr` in run `name`: in one process, or under `mpirun -np 2`.
fn finetune(
    task: &str,
    (data, runs): (&Path, &Path),
    name: &str,
    two_ranks: bool,
    sets: &[String],
) -> String {
    let mut cmd = match two_ranks {
        true => mpirun_two(),
        false => Command::new(clasp_exe()),
    };
    let mut all = vec![
        format!("run.name=\"{name}\""),
        "finetune.epochs=1".into(),
        "finetune.warmup_epochs=0".into(),
        format!("optim.lr={LR}"),
        // As in the accumulation test: Adam's eps at 1e-3 so gradients that are zero in exact
        // arithmetic (rounding noise) take no LR-sized steps.
        "optim.eps=1e-3".into(),
    ];
    all.extend(sets.iter().cloned());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    nano_finetune_args(&mut cmd, task, data, runs, &all);
    succeeded(cmd.output().unwrap())
}

const LR: f64 = 1e-3;

/// Gradients summed over ranks differ from one process's by rounding (~1e-7 relative), which
/// AdamW's normalised step turns into far less than the LR per step: a hundredth of the LR bounds
/// the gap after an epoch's few steps.
const TOLERANCE: f32 = (LR / 100.0) as f32;

/// The training loss each epoch logged.
fn losses(runs: &Path, name: &str) -> Vec<f64> {
    let losses = common::logged(&runs.join(name), "train_loss");
    losses.iter().map(|l| l.as_f64().unwrap()).collect()
}

/// The attribute set's 9 training images make job batches of 4, 4 and 1: in the last, rank 1's
/// block is empty and it still takes part in the step.
#[test]
fn two_processes_with_batches_of_two_step_like_one_with_batches_of_four() {
    let data = attribute_data();
    let runs = tempfile::tempdir().unwrap();
    let at = (&*data.path().join("attributes"), runs.path());
    let batch = |b: usize| vec![format!("finetune.batch_size={b}")];
    let log = finetune("attribute", at, "ranks", true, &batch(2));
    assert!(log.contains("rank 0 of 2 processes"), "{log}");
    // Both ranks predict their half of the validation and test splits; rank 0 alone scores
    // and reports them.
    assert_eq!(
        log.matches("evaluation shared by 2 processes").count(),
        2,
        "validation and test: {log}"
    );
    assert_eq!(log.matches("test, read once").count(), 1, "{log}");
    finetune("attribute", at, "four", false, &batch(4));
    let mut accumulated = batch(2);
    accumulated.push("finetune.accumulate=2".into());
    finetune("attribute", at, "accumulated", false, &accumulated);
    finetune("attribute", at, "two", false, &batch(2));

    let w = |name| delivered_weights(runs.path(), name);
    let (ranks, four) = (w("ranks"), w("four"));
    let gap = max_weight_gap(&ranks, &four, |_| true);
    assert!(
        gap < TOLERANCE,
        "two ranks vs one process with batches of 4: {gap:e}"
    );
    let gap = max_weight_gap(&ranks, &w("accumulated"), |_| true);
    assert!(gap < TOLERANCE, "two ranks vs accumulate = 2: {gap:e}");
    let gap = max_weight_gap(&four, &w("two"), |_| true);
    assert!(
        gap > TOLERANCE,
        "plain batches of 2 should end elsewhere: {gap:e}"
    );
    // The logged loss is the mean over both ranks' samples.
    let (a, b) = (losses(runs.path(), "ranks"), losses(runs.path(), "four"));
    assert!((a[0] - b[0]).abs() < 1e-5 * b[0].abs(), "{a:?} vs {b:?}");
    // The shared evaluation scores every sample once, as one process does: the same per-sample
    // rows on the test split, and metrics equal up to the weights' rounding-level gap.
    let metrics = |name: &str| common::logged(&runs.path().join(name), "metrics");
    let close = |a: &serde_json::Value, b: &serde_json::Value| {
        let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x[0], y[0]);
            // An undefined metric (no positive sample of an attribute) is null in both.
            match (x[1].as_f64(), y[1].as_f64()) {
                (Some(x), Some(y)) => assert!((x - y).abs() < 1e-4, "{a:?} vs {b:?}"),
                (x, y) => assert_eq!(x, y, "{a:?} vs {b:?}"),
            }
        }
    };
    close(&metrics("ranks")[0], &metrics("four")[0]);
    let scores = |name: &str| -> serde_json::Value {
        let path = runs.path().join(name).join("test_scores.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let (ranks, four) = (scores("ranks"), scores("four"));
    close(&ranks["metrics"], &four["metrics"]);
    // Row by row: the same people in the split's order, each scored alike.
    let rows = |s: &serde_json::Value| s["samples"].as_array().unwrap().clone();
    let (a, b) = (rows(&ranks), rows(&four));
    assert!(a.len() >= 2, "a test split of one sample shows nothing");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["group"], y["group"], "{a:?} vs {b:?}");
        let (xv, yv) = (
            x["values"].as_array().unwrap(),
            y["values"].as_array().unwrap(),
        );
        assert_eq!(xv.len(), yv.len());
        for (p, q) in xv.iter().zip(yv) {
            match (p.as_f64(), q.as_f64()) {
                (Some(p), Some(q)) => assert!((p - q).abs() < 1e-4, "{x:?} vs {y:?}"),
                (p, q) => assert_eq!(p, q),
            }
        }
    }
}

/// Reid's P × K batches, mined for hard triplets within each process's batch: two ranks with
/// P = 2 identities each take the steps one process takes accumulating two such batches (the
/// same identities, dealt per step). Batch norm's running statistics are each process's own,
/// and rank 0's are delivered, as in PyTorch's DDP without SyncBatchNorm.
#[test]
fn two_processes_with_pk_batches_step_like_two_accumulated_batches() {
    let data = synth(24, 4, 3, 3, [64, 32]);
    let runs = tempfile::tempdir().unwrap();
    let at = (&*data.path().join("reid"), runs.path());
    let pk = |accumulate: usize| {
        vec![
            "finetune.batch_size=4".to_string(),
            "finetune.instances_per_identity=2".into(),
            format!("finetune.accumulate={accumulate}"),
        ]
    };
    finetune("reid", at, "ranks", true, &pk(1));
    finetune("reid", at, "accumulated", false, &pk(2));
    let (ranks, accumulated) = (
        delivered_weights(runs.path(), "ranks"),
        delivered_weights(runs.path(), "accumulated"),
    );
    let statistics = |name: &str| name.contains("running_");
    let gap = max_weight_gap(&ranks, &accumulated, |n| !statistics(n));
    assert!(gap < TOLERANCE, "two ranks vs accumulate = 2: {gap:e}");
    assert!(
        max_weight_gap(&ranks, &accumulated, statistics) > 0.0,
        "rank 0's running statistics saw half of each step"
    );
    let (a, b) = (
        losses(runs.path(), "ranks"),
        losses(runs.path(), "accumulated"),
    );
    assert!((a[0] - b[0]).abs() < 1e-5 * b[0].abs(), "{a:?} vs {b:?}");

    // Both ranks predicted their half of the test split with rank 0's batch-norm statistics:
    // the shared read equals rank 0's delivered model evaluated by one process.
    let out = runs.path().join("alone.json");
    let o = Command::new(clasp_exe())
        .args(["eval", "--checkpoint"])
        .arg(runs.path().join("ranks/checkpoints/task_selected"))
        .arg("--data")
        .arg(data.path().join("reid"))
        .args(["--split", "test", "--out"])
        .arg(&out)
        .env("CLASP_PLUGIN_PATH", library("clasp_plugin_reid"))
        .output()
        .unwrap();
    succeeded(o);
    let alone: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let shared: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs.path().join("ranks/test_scores.json")).unwrap())
            .unwrap();
    for m in shared["metrics"].as_array().unwrap() {
        let (name, value) = (m[0].as_str().unwrap(), m[1].as_f64().unwrap());
        let one = alone["metrics"][name].as_f64().unwrap();
        assert!(
            (value - one).abs() < 1e-4,
            "{name}: shared {value}, one process {one}"
        );
    }
}

/// Two ranks stopped after the first of two epochs and resumed (every rank from the checkpoint
/// rank 0 wrote, each in its own dropout stream) log and deliver what two ranks running straight
/// through do.
#[test]
fn two_processes_stopped_after_an_epoch_and_resumed_equal_an_uninterrupted_pair() {
    let data = attribute_data();
    let runs = tempfile::tempdir().unwrap();
    let root = data.path().join("attributes");
    let run = |name: &str, flags: &[&str]| {
        let mut cmd = mpirun_two();
        // The MLP head, so each rank's dropout stream must resume where it stopped.
        let sets = [
            format!("run.name=\"{name}\""),
            "finetune.epochs=2".into(),
            "task.head=\"mlp\"".into(),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        nano_finetune_args(&mut cmd, "attribute", &root, runs.path(), &sets);
        succeeded(cmd.args(flags).output().unwrap())
    };
    run("straight", &[]);
    let stopped = run("split", &["--max-epochs", "1"]);
    assert!(stopped.contains("stopped after epoch 1 of 2"), "{stopped}");
    let resumed = run("split", &["--resume"]);
    assert_eq!(
        resumed.matches("after epoch 1").count(),
        2,
        "both ranks resumed: {resumed}"
    );
    let read = |run: &str| std::fs::read_to_string(runs.path().join(run).join("metrics.jsonl"));
    assert_eq!(read("straight").unwrap(), read("split").unwrap());
    let gap = max_weight_gap(
        &delivered_weights(runs.path(), "straight"),
        &delivered_weights(runs.path(), "split"),
        |_| true,
    );
    assert_eq!(gap, 0.0, "the resumed pair delivers other weights");
}

/// Two ranks that resolved different settings (another LR on one) would train apart: refused
/// before any step, naming why.
#[test]
fn ranks_with_different_settings_are_refused() {
    let data = attribute_data();
    let runs = tempfile::tempdir().unwrap();
    let root = data.path().join("attributes");
    // MPMD: one process per program, `:` between them; the two differ in their LR.
    let mut cmd = mpirun();
    for (i, lr) in ["1e-3", "2e-3"].into_iter().enumerate() {
        if i > 0 {
            cmd.arg(":");
        }
        cmd.args(["-np", "1"]).arg(clasp_exe());
        let sets = [format!("optim.lr={lr}"), "run.name=\"apart\"".into()];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        nano_finetune_args(&mut cmd, "attribute", &root, runs.path(), &sets);
    }
    let o = cmd.output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{log}");
    assert!(log.contains("resolved different settings"), "{log}");
}

/// A command that is not data parallel yet would run twice over the same run folder: refused,
/// by name, on every rank.
#[test]
fn a_command_that_is_not_data_parallel_is_refused_under_mpirun() {
    let runs = tempfile::tempdir().unwrap();
    let o = mpirun_two()
        .args(["probe", "--task", "attribute", "--set"])
        .arg(format!("run.dir=\"{}\"", runs.path().display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains("only `pretrain`, `finetune` and `label` run on several processes"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(runs.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

/// Two ranks whose data folders list different validation images (same settings, same number
/// of training images: each rank reads `attributes` in its own working directory, one with an
/// image renamed) would share the evaluation out by position over different lists: refused
/// before any step, naming the list.
#[test]
fn ranks_listing_different_validation_images_are_refused() {
    let data = attribute_data();
    let copies = tempfile::tempdir().unwrap();
    let runs = tempfile::tempdir().unwrap();
    for rank in ["a", "b"] {
        std::fs::create_dir(copies.path().join(rank)).unwrap();
        let copied = Command::new("cp")
            .arg("-r")
            .arg(data.path().join("attributes"))
            .arg(copies.path().join(rank))
            .status()
            .unwrap();
        assert!(copied.success());
    }
    let two_ranks = |name: &str| {
        let mut cmd = mpirun();
        for (i, rank) in ["a", "b"].into_iter().enumerate() {
            if i > 0 {
                cmd.arg(":");
            }
            cmd.args(["-np", "1", "-wdir"])
                .arg(copies.path().join(rank))
                .arg(clasp_exe());
            let sets = [format!("run.name=\"{name}\""), "finetune.epochs=1".into()];
            let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
            nano_finetune_args(
                &mut cmd,
                "attribute",
                Path::new("attributes"),
                runs.path(),
                &sets,
            );
        }
        cmd.output().unwrap()
    };
    // The same data in two folders: the lists agree, the job runs.
    succeeded(two_ranks("same"));
    // Rank b's first validation image under another name, in its list and on disk.
    let b = copies.path().join("b/attributes");
    let (first, val) = first_listed_image(&b.join("val.csv"));
    let renamed = format!("renamed_{first}");
    std::fs::write(b.join("val.csv"), val.replacen(&first, &renamed, 1)).unwrap();
    std::fs::rename(
        b.join("images").join(&first),
        b.join("images").join(&renamed),
    )
    .unwrap();

    let o = two_ranks("lists");
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{log}");
    assert!(log.contains("list different validation samples"), "{log}");
}

/// A torchrun-style launch (RANK, WORLD_SIZE, …) sums over NCCL: a build without it refuses,
/// saying how to launch instead, and a missing variable is named — before anything is written.
#[test]
fn a_torchrun_style_launch_names_what_it_lacks() {
    let data = attribute_data();
    let runs = tempfile::tempdir().unwrap();
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = Command::new(clasp_exe());
        nano_finetune_args(
            &mut cmd,
            "attribute",
            &data.path().join("attributes"),
            runs.path(),
            &[],
        );
        let o = cmd.envs(vars.iter().copied()).output().unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let full = [
        ("WORLD_SIZE", "2"),
        ("RANK", "0"),
        ("LOCAL_RANK", "0"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29500"),
    ];
    // The tests' `clasp` is built with MPI, without NCCL.
    let err = run(&full);
    assert!(err.contains("built without NCCL"), "{err}");
    assert!(err.contains("mpirun -np 2"), "{err}");
    let err = run(&full[..2]);
    assert!(err.contains("MASTER_ADDR is not set"), "{err}");
    assert!(
        std::fs::read_dir(runs.path()).unwrap().next().is_none(),
        "nothing written"
    );
}
