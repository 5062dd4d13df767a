//! `clasp quickstart --fast` end to end: synthetic data → teacher → pseudo-labels → three
//! pre-trainings → the four task plugins fine-tuned from each and from scratch → report; a rerun
//! reuses every finished stage.

use std::process::Command;

use crate::common;

fn quickstart(cwd: &std::path::Path) -> (bool, String) {
    let out = Command::new(common::plugin_libs::clasp_exe())
        .current_dir(cwd)
        .args(["quickstart", "--fast"])
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
    let (ok, log) = quickstart(tmp.path());
    assert!(ok, "{log}");
    let run = tmp.path().join("runs/quickstart");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    // One row per task with a number in each of the four variant columns.
    for (task, metric) in [
        ("reid", "mAP"),
        ("parsing", "mIoU"),
        ("pose", "AP"),
        ("attribute", "mA"),
    ] {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {task} ({metric})")))
            .unwrap_or_else(|| panic!("no {task} row in\n{report}"));
        let numbers = row
            .split('|')
            .filter_map(|c| c.trim().parse::<f64>().ok())
            .count();
        assert_eq!(numbers, 5, "four variants and the gain: {row}");
    }
    assert!(report.contains("part mIoU") && report.contains("attribute mA"));
    assert!(report.contains("ssl·part"), "{report}");
    for f in [
        "results.png",
        "teacher/model.safetensors",
        "labels/index.json",
        "pretrain-clasp/curves.png",
        "pretrain-clasp/gates.png",
        "finetune-clasp-pose/metrics.jsonl",
        "configs/finetune-reid.toml",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    // Rerun: every stage is reused, the report is the same table.
    let (ok, log) = quickstart(tmp.path());
    assert!(ok, "{log}");
    assert!(log.contains("teacher: reused"), "{log}");
    assert!(log.contains("pretrain (d) CLASP: reused"), "{log}");
    assert!(log.contains("finetune-scratch-reid: reused"), "{log}");
    let again = std::fs::read_to_string(run.join("report.md")).unwrap();
    let table = |r: &str| {
        r.lines()
            .filter(|l| l.starts_with("| "))
            .take(6)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(table(&report), table(&again));
}
