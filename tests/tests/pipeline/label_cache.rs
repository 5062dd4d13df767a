//! The trained teacher and the pseudo-label cache, through the `clasp` binary: `teacher train`
//! writes a CLIP folder the loader reads; `label` stopped after a shard and rerun (or split over
//! two `--shard` workers, or two processes under `mpirun`) writes the same cache as one
//! uninterrupted run, refuses another teacher
//! or vocabulary, and skips and counts an unreadable image; `teacher eval` scores the labels;
//! task prompts are seeded by the teacher's text embedding; `teacher train` stopped after an
//! epoch and resumed ends with the weights of an uninterrupted run.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use candle_core::Device;
use clasp_core::teacher::clip::Clip;
use clasp_core::teacher::label_cache::read_cache;
use clasp_core::teacher::pseudo_labels::l2_normalize;
use clasp_core::teacher::tokenizer::ClipTokenizer;

/// A teacher small enough to train in seconds, labelling with the default vocabulary (meant for
/// OpenAI's CLIP: some of its words are not in the synthetic captions, which these tests allow).
const TINY: [&str; 14] = [
    "teacher.img_size=[64, 32]",
    "teacher.width=32",
    "teacher.layers=2",
    "teacher.heads=2",
    "teacher.text_width=32",
    "teacher.text_layers=1",
    "teacher.text_heads=2",
    "teacher.projection_dim=16",
    "teacher.epochs=2",
    "teacher.batch_size=8",
    "teacher.warmup_steps=2",
    "label.shard_size=5",
    "label.allow_unknown_words=true",
    // One broken image among the 5 of a one-shard run: a fifth of that pass.
    "data.max_skipped_fraction=0.25",
];

pub fn clasp(args: &[&str], sets: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(common::plugin_libs::clasp_exe());
    cmd.args(args);
    for s in TINY.iter().chain(sets) {
        cmd.args(["--set", s]);
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

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub synth: tempfile::TempDir,
    pub teacher: PathBuf,
    other_teacher: PathBuf,
    pub root: PathBuf,
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// One synthetic set and two teachers (seeds 0 and 1), trained once for all tests.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let synth = common::task_data::synth(10, 4, 3, 3, [64, 32]);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let teacher = root.join("teacher");
        let other_teacher = root.join("teacher-seed1");
        for (out, seed) in [(&teacher, "run.seed=0"), (&other_teacher, "run.seed=1")] {
            let (ok, log) = clasp(
                &[
                    "teacher",
                    "train",
                    "--data",
                    s(synth.path()),
                    "--out",
                    s(out),
                ],
                &[seed],
            );
            assert!(ok, "{log}");
            assert!(log.contains("held-out image→text top-1"), "{log}");
        }
        Fixture {
            _dir: dir,
            synth,
            teacher,
            other_teacher,
            root,
        }
    })
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn teacher_train_writes_a_clip_folder_that_loads_and_has_learnt() {
    let f = fixture();
    for name in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
        "training.json",
    ] {
        assert!(f.teacher.join(name).is_file(), "{name} missing");
    }
    // Training onto an existing teacher is refused before any work, leaving it as it was.
    let before = std::fs::read(f.teacher.join("model.safetensors")).unwrap();
    let (ok, log) = clasp(
        &[
            "teacher",
            "train",
            "--data",
            s(f.synth.path()),
            "--out",
            s(&f.teacher),
        ],
        &["run.seed=3"],
    );
    assert!(
        !ok && log.contains("already exists") && log.contains("--overwrite"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(f.teacher.join("model.safetensors")).unwrap(),
        before
    );
    let clip = Clip::load(&f.teacher, &Device::Cpu).unwrap();
    assert_eq!(clip.config.projection_dim, 16);
    // Training moved the weights away from the same seed's initialisation.
    let fresh = Clip::new(clip.config.clone(), &Device::Cpu, 0).unwrap();
    let (trained, init) = (clip.store.tensors(), fresh.store.tensors());
    let moved = trained
        .iter()
        .filter(|(k, v)| common::max_abs_diff(v, &init[*k]) > 1e-6)
        .count();
    assert!(
        moved > trained.len() / 2,
        "{moved} of {} tensors changed",
        trained.len()
    );
    // Its tokenizer wraps captions in start/end of text and knows the caption words.
    let tok = ClipTokenizer::from_dir(&f.teacher, clip.config.text_config.max_position_embeddings)
        .unwrap()
        .pad_to_longest();
    let ids = tok.encode(&["a person in shoes"]).unwrap();
    assert_eq!(ids[0].len(), 6);
    assert!(!ids[0].contains(&tok.token_id("<|unk|>").unwrap()));
    let text = clip.text_embeds(&ids).unwrap();
    assert_eq!(text.dims(), [1, 16]);
    // `teacher embed` reads the folder like any CLIP.
    let out = f.root.join("embed.safetensors");
    let (ok, log) = clasp(
        &[
            "teacher",
            "embed",
            "--teacher",
            s(&f.teacher),
            "--text",
            "a person in shoes",
            "--out",
            s(&out),
        ],
        &[],
    );
    assert!(ok, "{log}");
    let got = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    assert!(common::max_abs_diff(&got["text_embeds"], &text) < 1e-5);
}

/// A folder of the synthetic people plus one file that is not an image.
fn images_with_a_broken_one(f: &Fixture) -> PathBuf {
    let dir = f.root.join("crops");
    if !dir.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let src = f.synth.path().join("reid/bounding_box_train");
        for e in std::fs::read_dir(&src).unwrap().take(17) {
            let p = e.unwrap().path();
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
        std::fs::write(dir.join("0000_broken.jpg"), b"not a jpeg").unwrap();
    }
    dir
}

#[test]
fn label_resumes_after_a_stop_and_equals_an_uninterrupted_run() {
    let f = fixture();
    let images = images_with_a_broken_one(f);
    let label = |out: &Path, extra: &[&str], teacher: &Path, sets: &[&str]| {
        let mut args = vec![
            "label",
            "--teacher",
            s(teacher),
            "--images",
            s(&images),
            "--out",
            s(out),
        ];
        args.extend_from_slice(extra);
        clasp(&args.iter().map(|a| &**a).collect::<Vec<_>>(), sets)
    };

    // Uninterrupted: 18 files → 4 shards of 5; the broken file is skipped and counted.
    let whole = f.root.join("cache-whole");
    let (ok, log) = label(&whole, &[], &f.teacher, &[]);
    assert!(ok, "{log}");
    assert!(
        log.contains("1 unreadable images skipped (0000_broken.jpg)"),
        "{log}"
    );
    assert!(
        log.contains("cache complete: 18 images in 4 shards"),
        "{log}"
    );
    let cache = read_cache(&whole).unwrap();
    assert_eq!(cache.valid.iter().filter(|v| !**v).count(), 1);
    assert!(!cache.valid[0], "the broken file sorts first");
    let [gh, gw] = cache.index.vocabulary.grid;
    assert_eq!([gh, gw], [4, 2], "64×32 crops, patch 16");
    assert_eq!(cache.parts.len(), 18 * gh * gw);
    assert_eq!(cache.attributes.len(), 18 * 26);
    assert!(cache.parts.iter().all(|p| *p < 6));
    assert!(cache.attributes.iter().all(|p| (0.0..=1.0).contains(p)));

    // Stopped after one shard, then rerun: the same files.
    let resumed = f.root.join("cache-resumed");
    let (ok, log) = label(&resumed, &["--max-shards", "1"], &f.teacher, &[]);
    assert!(ok && log.contains("cache incomplete"), "{log}");
    assert_eq!(
        files(&resumed).len(),
        3,
        "index + one shard and its checksum"
    );
    assert!(read_cache(&resumed).is_err());
    let (ok, log) = label(&resumed, &[], &f.teacher, &[]);
    assert!(ok && log.contains("(1 already done)"), "{log}");
    assert_eq!(files(&resumed), files(&whole));

    // A shard cut off (a copy that stopped, a full disk) is not "done": read_cache names it,
    // and a rerun writes it again, with a stale temporary of a killed job cleared away.
    let shard = resumed.join("shard-00002.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(
        resumed.join(".tmp-shard-00003.safetensors-4000000000"),
        b"half",
    )
    .unwrap();
    let e = format!("{:#}", read_cache(&resumed).unwrap_err());
    assert!(
        e.contains("shard-00002.safetensors") && e.contains("does not match its checksum"),
        "{e}"
    );
    let (ok, log) = label(&resumed, &[], &f.teacher, &[]);
    assert!(ok && log.contains("(3 already done)"), "{log}");
    assert_eq!(files(&resumed), files(&whole));

    // Killed (SIGKILL) once its first shard is written, then rerun: the same files again (the
    // killed job's temporary, if it left one, is cleared).
    let killed = f.root.join("cache-killed");
    let mut child = Command::new(common::plugin_libs::clasp_exe())
        .args([
            "label",
            "--teacher",
            s(&f.teacher),
            "--images",
            s(&images),
            "--out",
            s(&killed),
        ])
        .args(TINY.iter().flat_map(|t| ["--set", t]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !killed.join("shard-00000.safetensors").exists() && child.try_wait().unwrap().is_none() {
        assert!(start.elapsed().as_secs() < 300, "no shard was written");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (ok, log) = label(&killed, &[], &f.teacher, &[]);
    assert!(ok && log.contains("cache complete"), "{log}");
    assert_eq!(files(&killed), files(&whole));

    // Two workers, each its own shards: the same files again.
    let split = f.root.join("cache-split");
    for shard in ["1/2", "0/2"] {
        let (ok, log) = label(&split, &["--shard", shard], &f.teacher, &[]);
        assert!(ok, "{log}");
    }
    assert_eq!(files(&split), files(&whole));

    // Another teacher or another vocabulary is refused, and the cache is left as it was.
    let (ok, log) = label(&whole, &[], &f.other_teacher, &[]);
    assert!(!ok && log.contains("another teacher"), "{log}");
    let (ok, log) = label(&whole, &[], &f.teacher, &["label.part_temperature=0.2"]);
    assert!(!ok && log.contains("another vocabulary"), "{log}");
    assert_eq!(files(&resumed), files(&whole));
}

/// `clasp label` under `mpirun -np 2`: each process labels its share of the shards (rank/2) into
/// the one cache, which is the cache one process writes, byte for byte.
#[cfg(feature = "mpi")]
#[test]
fn two_processes_under_mpirun_write_the_cache_one_process_writes() {
    let f = fixture();
    let images = f.root.join("crops-mpi");
    std::fs::create_dir_all(&images).unwrap();
    let src = f.synth.path().join("reid/bounding_box_train");
    for e in std::fs::read_dir(&src).unwrap().take(13) {
        let p = e.unwrap().path();
        std::fs::copy(&p, images.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(images.join("0000_broken.jpg"), b"not a jpeg").unwrap();
    let args = |out: &Path| {
        let mut a: Vec<String> = ["label", "--teacher", s(&f.teacher), "--images", s(&images)]
            .map(String::from)
            .to_vec();
        a.extend(["--out".to_string(), s(out).to_string()]);
        a.extend(
            TINY.iter()
                .flat_map(|t| ["--set".to_string(), t.to_string()]),
        );
        a
    };
    let one = f.root.join("cache-mpi-one");
    let run =
        |mut cmd: Command, out: &Path| common::succeeded(cmd.args(args(out)).output().unwrap());
    run(Command::new(common::plugin_libs::clasp_exe()), &one);
    let two = f.root.join("cache-mpi-two");
    let log = run(common::mpirun_two(), &two);
    assert!(log.contains("rank 1 of 2 processes"), "{log}");
    assert!(
        log.contains("cache complete: 14 images in 3 shards"),
        "{log}"
    );
    assert_eq!(files(&two), files(&one));
}

#[test]
fn teacher_eval_scores_pseudo_labels_beside_the_row_baseline() {
    let f = fixture();
    // Scored on held-out people: one image each of 15 of them (the fixture's set holds five).
    let people = common::task_data::synth(30, 2, 3, 9, [64, 32]);
    let picture = f.root.join("parts.png");
    let (ok, log) = clasp(
        &[
            "teacher",
            "eval",
            "--teacher",
            s(&f.teacher),
            "--data",
            s(people.path()),
            "--picture",
            s(&picture),
            "--json",
            s(&f.root.join("quality.json")),
        ],
        // An 8×4 patch grid (the teacher's position grid interpolated), fine enough for rows.
        &["label.img_size=[128, 64]"],
    );
    assert!(ok, "{log}");
    assert!(
        log.contains("row baseline") && log.contains("attribute mA"),
        "{log}"
    );
    let q: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.root.join("quality.json")).unwrap())
            .unwrap();
    // The row baseline is fixed: on standing synthetic people its middle rows overlap the
    // torso and the legs (most patches of every row are background, so IoUs stay small).
    let rows = q["row_baseline_iou"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(
        rows[2][1].as_f64().unwrap() > 0.1,
        "upper-body row IoU {rows:?}"
    );
    assert!(
        rows[4][1].as_f64().unwrap() > 0.1,
        "lower-body row IoU {rows:?}"
    );
    assert_eq!(
        rows[0][1].as_f64().unwrap(),
        0.0,
        "the rows never say background"
    );
    let ma = q["attribute_ma"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ma));
    assert_eq!(q["attribute_accuracy"].as_array().unwrap().len(), 26);
    let img = image::open(&picture).unwrap();
    assert!(img.width() >= 3 * 32 && img.height() >= 64);
}

#[test]
fn task_prompts_are_seeded_by_the_teachers_text_embedding() {
    let f = fixture();
    let out = f.root.join("backbone");
    let teacher_set = format!("model.prompts.teacher={}", s(&f.teacher));
    let (ok, log) = clasp(
        &["init", "--out", s(&out)],
        &[
            "model.preset=nano",
            "model.prompts.text_dim=16",
            &teacher_set,
        ],
    );
    assert!(ok, "{log}");
    let ck = out.join(clasp_core::checkpoint::manifest::WEIGHTS_FILE);
    let weights = candle_core::safetensors::load(&ck, &Device::Cpu).unwrap();
    let clip = Clip::load(&f.teacher, &Device::Cpu).unwrap();
    let tok = ClipTokenizer::from_dir(&f.teacher, clip.config.text_config.max_position_embeddings)
        .unwrap();
    let want = l2_normalize(
        &clip
            .text_embeds(&tok.encode(&["a photo of a person"]).unwrap())
            .unwrap(),
    )
    .unwrap()
    .squeeze(0)
    .unwrap();
    let d = common::max_abs_diff(&weights["prompts.text_embed.ssl"], &want);
    assert!(
        d < 1e-6,
        "e_ssl differs from the teacher's embedding by {d}"
    );
    // A second init onto the checkpoint is refused and leaves it as it was; --overwrite
    // replaces it.
    let before = std::fs::read(&ck).unwrap();
    let init_again = |extra: &[&str]| {
        let mut args = vec!["init", "--out", s(&out)];
        args.extend(extra);
        clasp(
            &args,
            &[
                "model.preset=nano",
                "model.prompts.text_dim=16",
                &teacher_set,
                "run.seed=5",
            ],
        )
    };
    let (ok, log) = init_again(&[]);
    assert!(
        !ok && log.contains("already exists") && log.contains("--overwrite"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(&ck).unwrap(),
        before,
        "the refused init touched the checkpoint"
    );
    let (ok, log) = init_again(&["--overwrite"]);
    assert!(ok, "{log}");
    assert_ne!(
        std::fs::read(&ck).unwrap(),
        before,
        "another seed, other weights"
    );
    // A file in the way is replaced too, with --overwrite, and named without it.
    let file = f.root.join("a-file");
    std::fs::write(&file, "not a checkpoint").unwrap();
    let (ok, log) = clasp(&["init", "--out", s(&file)], &["model.preset=nano"]);
    assert!(
        !ok && log.contains("a-file already exists (a file)"),
        "{log}"
    );
    let (ok, log) = clasp(
        &["init", "--out", s(&file), "--overwrite"],
        &["model.preset=nano"],
    );
    assert!(
        ok && file
            .join(clasp_core::checkpoint::manifest::WEIGHTS_FILE)
            .exists(),
        "{log}"
    );

    // A model setting the checkpoint fixes is refused by name when it differs, before any
    // run folder is written; left at its default it takes the checkpoint's value.
    let plugins = format!(
        "plugins.dirs=[\"{}\"]",
        common::plugin_libs::plugin_dir().display()
    );
    let runs = format!("run.dir=\"{}\"", f.root.join("runs-fixed").display());
    let probe = |sets: &[&str]| {
        let mut all = vec![plugins.as_str(), runs.as_str(), "probe.epochs=1"];
        all.extend(sets);
        clasp(
            &["probe", "--task", "attribute", "--backbone", s(&out)],
            &all,
        )
    };
    let (ok, log) = probe(&["model.img_size=[128, 64]"]);
    assert!(
        !ok && log.contains("`model.img_size` = [128, 64]") && log.contains("[256, 128]"),
        "{log}"
    );
    assert!(!f.root.join("runs-fixed").exists(), "{log}");

    // A prompt width other than the teacher's is named.
    let (ok, log) = clasp(
        &["init", "--out", s(&f.root.join("bad"))],
        &["model.preset=nano", &teacher_set],
    );
    assert!(!ok && log.contains("model.prompts.text_dim"), "{log}");
}

#[test]
fn teacher_train_stopped_after_an_epoch_and_resumed_equals_an_uninterrupted_run() {
    let f = fixture();
    let out = f.root.join("teacher-resumed");
    let train = |extra: &[&str], sets: &[&str]| {
        let mut args = vec![
            "teacher",
            "train",
            "--data",
            s(f.synth.path()),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        clasp(&args, sets)
    };
    let (ok, log) = train(&["--max-epochs", "1"], &["run.seed=0"]);
    assert!(ok && log.contains("stopped after epoch 1 of 2"), "{log}");
    assert!(!out.exists(), "no folder before the last epoch");
    // Other settings refuse to resume and name what differs; the saved state survives.
    let (ok, log) = train(&["--resume"], &["run.seed=0", "teacher.lr=0.001"]);
    assert!(!ok && log.contains("`teacher.lr`"), "{log}");
    let (ok, log) = train(&["--resume"], &["run.seed=0"]);
    assert!(ok && log.contains("resuming after epoch 1"), "{log}");
    assert!(!f.root.join(".teacher-resumed.resume").exists());
    let read = |dir: &Path| {
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
    };
    let (resumed, straight) = (read(&out), read(&f.teacher));
    assert_eq!(resumed.len(), straight.len());
    for (name, t) in &straight {
        let d = common::max_abs_diff(&resumed[name], t);
        assert!(d <= 1e-6, "{name}: resumed and uninterrupted differ by {d}");
    }
    for name in ["train_log.jsonl", "config.json", "tokenizer.json"] {
        assert_eq!(
            std::fs::read_to_string(out.join(name)).unwrap(),
            std::fs::read_to_string(f.teacher.join(name)).unwrap(),
            "{name}"
        );
    }
}

/// A vocabulary with words the teacher never read is refused, naming the prompts and the key
/// that allows it.
#[test]
fn label_refuses_prompts_the_teacher_cannot_read() {
    let f = fixture();
    let out = f.root.join("cache-refused");
    let (ok, log) = clasp(
        &[
            "label",
            "--teacher",
            s(&f.teacher),
            "--images",
            s(&f.synth.path().join("reid/bounding_box_train")),
            "--out",
            s(&out),
        ],
        &["label.allow_unknown_words=false"],
    );
    assert!(!ok, "{log}");
    assert!(
        log.contains("a head") && log.contains("label.allow_unknown_words"),
        "{log}"
    );
    assert!(!out.join("index.json").exists(), "nothing labelled");
}
