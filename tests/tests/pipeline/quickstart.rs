//! `clasp quickstart --fast` end to end: synthetic data → the shipped teacher → pseudo-labels →
//! three pre-trainings → the four task plugins probed and fine-tuned from each and from a random
//! backbone → report with intervals; a rerun reuses every finished stage.

use std::process::Command;

use crate::common;

fn quickstart(cwd: &std::path::Path, jobs: &str) -> (bool, String) {
    quickstart_with(cwd, jobs, &[])
}

fn quickstart_with(cwd: &std::path::Path, jobs: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(common::plugin_libs::clasp_exe())
        .current_dir(cwd)
        .args(["quickstart", "--fast", "--jobs", jobs])
        .envs(env.iter().copied())
        .env("CLASP_PLUGIN_PATH", common::plugin_libs::plugin_dir())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn quickstart_fast_runs_every_stage_and_reports_all_tasks_and_variants() {
    let tmp = tempfile::tempdir().unwrap();
    // Two stages at a time, each in a child process of one thread (whatever the machine).
    let one_thread = [("RAYON_NUM_THREADS", "1"), ("CANDLE_NUM_THREADS", "1")];
    let (ok, log) = quickstart_with(tmp.path(), "2", &one_thread);
    assert!(ok, "{log}");
    assert!(
        log.contains("2 at a time in processes of their own"),
        "{log}"
    );
    let run = tmp.path().join("runs/quickstart");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    // Per protocol, one row per task: the image-blind level and the four variants, each a value
    // with its interval.
    for section in ["## Frozen-backbone probes", "## Fine-tuning"] {
        let start = report
            .find(section)
            .unwrap_or_else(|| panic!("no {section} in\n{report}"));
        let body = &report[start..];
        for (task, metric) in [
            ("reid", "mAP"),
            ("parsing", "mIoU"),
            ("pose", "AP"),
            ("attribute", "mA"),
            ("attribute", "mAUC"),
        ] {
            let row = body
                .lines()
                .find(|l| l.starts_with(&format!("| {task} ({metric}) |")))
                .unwrap_or_else(|| panic!("no {task} row in {section}:\n{report}"));
            let intervals = row.matches(" [").count();
            assert_eq!(intervals, 5, "blind level and four variants: {row}");
        }
        let diff = body
            .lines()
            .find(|l| l.starts_with("| (d) CLASP − (a) random init |"))
            .unwrap_or_else(|| panic!("no paired difference in {section}"));
        assert!(
            diff.contains("separated") || diff.contains("ahead") || diff.contains("behind"),
            "{diff}"
        );
    }
    // Reid also by nearest neighbour on the frozen CLS, beside its trained probe.
    let start = report
        .find("## Nearest neighbour on the frozen CLS")
        .unwrap_or_else(|| panic!("no nearest-neighbour section in\n{report}"));
    let body = &report[start..report.find("## Fine-tuning").unwrap()];
    let row = body
        .lines()
        .find(|l| l.starts_with("| reid (mAP) |"))
        .unwrap_or_else(|| panic!("no reid row by nearest neighbour:\n{report}"));
    assert_eq!(row.matches(" [").count(), 5, "{row}");
    assert!(
        !body.contains("| parsing ("),
        "only reid is read by nearest neighbour"
    );
    assert!(report.contains("part mIoU") && report.contains("attribute mA"));
    assert!(report.contains("ssl·part"), "{report}");
    // How much of the machine the host took, so runs' times can be compared (where there is a
    // /proc/stat to read it from).
    if std::path::Path::new("/proc/stat").exists() {
        assert!(
            report.contains("The host took") && report.contains("`steal` in `/proc/stat`"),
            "{report}"
        );
    }
    assert!(log.contains("the shipped synthetic CLIP"), "{log}");
    for f in [
        "results.png",
        "comparisons.json",
        "teacher/model.safetensors",
        "labels/index.json",
        "pretrain-clasp/curves.png",
        "pretrain-clasp/gates.png",
        "probe-clasp-reid/probe.json",
        "nn-clasp-reid/probe.json",
        "finetune-clasp-pose/metrics.jsonl",
        "finetune-clasp-pose/test_scores.json",
        "finetune-clasp-pose/checkpoints/task_selected/manifest.json",
        "configs/finetune-reid.toml",
        "logs/pretrain-clasp.log",
        "logs/finetune-clasp-pose.log",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    // Rerun, in one process: every stage is reused, the report is the same.
    let (ok, log) = quickstart(tmp.path(), "1");
    assert!(ok, "{log}");
    assert!(log.contains("teacher: reused"), "{log}");
    assert!(log.contains("pretrain (d) CLASP seed 0: reused"), "{log}");
    assert!(log.contains("probe-scratch-reid: reused"), "{log}");
    assert!(log.contains("finetune-scratch-reid: reused"), "{log}");
    let again = std::fs::read_to_string(run.join("report.md")).unwrap();
    // Everything but the stage times (the rerun's are its own).
    let results = |r: &str| r.split("## Time per stage").next().unwrap().to_string();
    assert_eq!(results(&report), results(&again));

    // The stages run one after the other in one process, on one thread as each child ran,
    // compute exactly what the child processes computed: the stages share nothing but files
    // written before them. (The thread count itself changes float sums on larger tiers.)
    let apart = tempfile::tempdir().unwrap();
    let (ok, log) = quickstart_with(apart.path(), "1", &one_thread);
    assert!(ok, "{log}");
    assert!(!log.contains("processes of their own"), "{log}");
    let comparisons = |dir: &std::path::Path| {
        std::fs::read_to_string(dir.join("runs/quickstart/comparisons.json")).unwrap()
    };
    assert_eq!(comparisons(tmp.path()), comparisons(apart.path()));

    // A rerun under other settings runs again exactly the stages that read them (the old
    // folder moved aside), and refuses data rendered for another tier. A key no stage reads
    // (the teacher's epochs: the shipped teacher is installed, not trained) reruns nothing.
    // A pre-training left interrupted (its checkpoints, no result) saved its state under the old
    // value: it starts afresh rather than resume under settings it did not save, and every read
    // of its backbone runs again.
    std::fs::remove_file(run.join("pretrain-clasp/done.json")).unwrap();
    let out = Command::new(common::plugin_libs::clasp_exe())
        .current_dir(tmp.path())
        .args([
            "quickstart",
            "--fast",
            "--jobs",
            "1",
            "--set",
            "probe.seeds=1",
            "--set",
            "teacher.epochs=7",
        ])
        .env("CLASP_PLUGIN_PATH", common::plugin_libs::plugin_dir())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains(
            "probe-clasp-reid: ran under other settings: `probe.seeds` (saved 2, now 1): run again"
        ),
        "{log}"
    );
    assert!(
        log.contains(
            "pretrain-clasp: its interrupted run saved its state under other settings \
             (`teacher.epochs`"
        ) && log.contains(", now 7)): starting afresh"),
        "{log}"
    );
    assert!(
        log.contains("pretrain (b) DINO only seed 0: reused"),
        "{log}"
    );
    assert!(log.contains("finetune-dino-parsing: reused"), "{log}");
    assert!(
        log.contains(
            "finetune-clasp-parsing: read a backbone that was pre-trained again since: run again"
        ),
        "{log}"
    );
    assert!(!log.contains("probe-clasp-reid: reused"), "{log}");
    let probe: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("probe-clasp-reid/result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(probe["values"].as_array().unwrap().len(), 1, "{probe}");
    let (ok, log) = {
        let out = Command::new(common::plugin_libs::clasp_exe())
            .current_dir(tmp.path())
            .args(["quickstart", "--budget", "quick"])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert!(!ok);
    assert!(
        log.contains("runs/quickstart/data was rendered with other settings")
            && log.contains("identities 20, now 300"),
        "{log}"
    );
    // The labels stand on the shipped teacher: asking for a trained one is refused, not mixed.
    let out = Command::new(common::plugin_libs::clasp_exe())
        .current_dir(tmp.path())
        .args(["quickstart", "--fast", "--train-teacher"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        log.contains("runs/quickstart/teacher holds the shipped teacher and this quickstart asks for one trained in the run"),
        "{log}"
    );
}

/// A stage running in a child process stops when its quickstart is killed: no orphan keeps
/// training and holding its run folder (it resumes from its checkpoint on the next run).
#[test]
fn killing_the_quickstart_stops_the_stages_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    let mut parent = Command::new(common::plugin_libs::clasp_exe())
        .current_dir(tmp.path())
        // Pre-training long enough to be running when the quickstart is killed.
        .args(["quickstart", "--fast", "--jobs", "2"])
        .args(["--set", "pretrain.epochs=100000"])
        .env("CLASP_PLUGIN_PATH", common::plugin_libs::plugin_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let cwd = tmp.path().canonicalize().unwrap();
    // The live stage processes started in this folder.
    let stages = || -> Vec<String> {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .map(|p| p.path())
            .filter(|p| {
                let cmd = std::fs::read(p.join("cmdline")).unwrap_or_default();
                let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
                let zombie = stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'));
                String::from_utf8_lossy(&cmd).contains("--stage")
                    && std::fs::read_link(p.join("cwd")).is_ok_and(|d| d == cwd)
                    && !zombie
            })
            .map(|p| p.display().to_string())
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while stages().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no stage started");
        assert!(parent.try_wait().unwrap().is_none(), "the quickstart ended");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    parent.kill().unwrap(); // SIGKILL: the quickstart cannot stop them itself
    parent.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !stages().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "stages outlived their quickstart: {:?}",
            stages()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
