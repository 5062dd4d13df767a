//! The parsing plugin through the stable ABI: its loss is per-pixel cross entropy on the label at
//! each score pixel's centre, every head parameter trains with either head and restores, mirrored
//! samples swap left and right, `clasp eval --input pred_dir=… --input gt_dir=…` equals torchmetrics, and a nano
//! backbone fine-tuned from scratch parses unseen people far above chance.

use candle_core::{Device, Tensor};
use clasp_core::finetune::sample::load_sample;
use clasp_core::plugin_host::task_head::{dataset, RecordFlip, TaskHead};
use clasp_core::plugin_host::{load, Plugin};
use clasp_sdk::abi::Record;
use clasp_sdk::Split;

mod common;
use common::plugin_libs::{input, library};
use common::task_data::{
    assert_restores, finetune_from_scratch, predict_pictures, synth, task_config as config,
};

fn parsing() -> Plugin {
    load(&library("clasp_plugin_parsing"), None).unwrap()
}

/// LIP's class for a pixel of class `k` after a mirror: left and right arm, leg and shoe swap.
fn lip_mirror(k: usize) -> usize {
    match k {
        14 => 15,
        15 => 14,
        16 => 17,
        17 => 16,
        18 => 19,
        19 => 18,
        k => k,
    }
}

/// A loaded label map as the host hands it over: `values` of `shape` `[H, W]`.
fn label_record(h: usize, w: usize, labels: &[f32]) -> Record {
    Record {
        image: "hand.png".into(),
        values: labels.to_vec().into(),
        shape: vec![h as u64, w as u64].into(),
        label_map: Some("hand_labels.png".into()).into(),
        ..Default::default()
    }
}

#[test]
fn the_loss_is_pixel_cross_entropy_on_the_label_at_each_score_centre() {
    let plugin = parsing();
    let cfg = config(&plugin, &[("channels", 8.into())]);
    let th = TaskHead::build(plugin, cfg, 16, &Device::Cpu, 0).unwrap();
    // Two images, 2×1 patches → 8×4 scores; labels at 4× that (32×16): stride 4, centre +2.
    let (b, dim) = (2, 16);
    let cls = Tensor::zeros((b, dim), candle_core::DType::F32, &Device::Cpu).unwrap();
    let patches = Tensor::randn(0f32, 1.0, (b, dim, 2, 1), &Device::Cpu).unwrap();
    let out = th.forward(&cls, &patches, true).unwrap();
    assert_eq!(out.first().unwrap().dims(), &[b, 20, 8, 4]);
    let (lh, lw) = (32, 16);
    let targets: Vec<Record> = (0..b)
        .map(|i| {
            let labels: Vec<f32> = (0..lh * lw)
                .map(|p| {
                    let (y, x) = (p / lw, p % lw);
                    // Some pixels unlabelled, the rest cycling through the classes.
                    if (x + y + i) % 7 == 0 {
                        255.0
                    } else {
                        ((3 * x + y + i) % 20) as f32
                    }
                })
                .collect();
            label_record(lh, lw, &labels)
        })
        .collect();
    let loss = th.loss(&out, &targets).unwrap().to_scalar::<f32>().unwrap() as f64;

    let s: Vec<f64> = out
        .first()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| *v as f64)
        .collect();
    let (mut sum, mut n) = (0.0, 0usize);
    for (i, t) in targets.iter().enumerate() {
        for y in 0..8 {
            for x in 0..4 {
                let label = t.values[(4 * y + 2) * lw + 4 * x + 2];
                if label == 255.0 {
                    continue;
                }
                let at = |k: usize| s[((i * 20 + k) * 8 + y) * 4 + x];
                let max = (0..20).map(at).fold(f64::MIN, f64::max);
                let lse = max + (0..20).map(|k| (at(k) - max).exp()).sum::<f64>().ln();
                sum += lse - at(label as usize);
                n += 1;
            }
        }
    }
    let want = sum / n as f64;
    assert!((loss - want).abs() < 1e-5, "{loss} vs {want}");

    // A label map that is not a whole multiple of the score grid is refused, naming the image.
    let bad = vec![label_record(30, 16, &vec![0.0; 30 * 16]); 2];
    let e = format!("{:#}", th.loss(&out, &bad).unwrap_err());
    assert!(
        e.contains("parsing") && e.contains("hand.png") && e.contains("30×16"),
        "{e}"
    );
}

#[test]
fn every_head_parameter_trains_with_either_head_and_a_saved_head_restores() {
    let plugin = parsing();
    let data = synth(6, 2, 4, 5, [64, 32]);
    let root = data.path().join("parsing");
    for head in ["deconv", "nearest"] {
        let cfg = config(&plugin, &[("head", head.into()), ("channels", 8.into())]);
        let train = dataset(&plugin, &cfg, &root, Split::Train).unwrap();
        assert_eq!(train.len(), 3 * 2, "3 train identities × 2 images");
        let th =
            TaskHead::build_for_training(plugin.clone(), cfg.clone(), 16, &Device::Cpu, 0, &train)
                .unwrap();
        // The host loads each label map at the input size (64×32) beside its image.
        let loaded: Vec<Record> = train[..4]
            .iter()
            .map(|r| load_sample(r, [64, 32]).unwrap().1)
            .collect();
        assert_eq!(loaded[0].values.len(), 64 * 32);
        let cls = Tensor::randn(0f32, 1.0, (4, 16), &Device::Cpu).unwrap();
        let patches = Tensor::randn(0f32, 1.0, (4, 16, 4, 2), &Device::Cpu).unwrap();
        let out = th.forward(&cls, &patches, true).unwrap();
        assert_eq!(
            out.first().unwrap().dims(),
            &[4, 20, 16, 8],
            "{head}: stride 4"
        );
        let grads = th.loss(&out, &loaded).unwrap().backward().unwrap();
        let problems = th.state.params.gradient_problems(&grads).unwrap();
        assert!(problems.is_empty(), "{head}: {problems:?}");

        let eval = assert_restores(&th, &cls, &patches, head);

        let preds = th.decode(&eval).unwrap();
        let metrics = th.evaluate(&preds, &loaded).unwrap();
        let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["mIoU", "pixel_accuracy", "mean_accuracy"]);
    }
}

#[test]
fn a_mirrored_sample_swaps_left_and_right_classes() {
    let plugin = parsing();
    let cfg = config(&plugin, &[]);
    let data = synth(4, 2, 4, 9, [64, 32]);
    let train = dataset(&plugin, &cfg, &data.path().join("parsing"), Split::Train).unwrap();
    let flip = RecordFlip {
        plugin: plugin.clone(),
        config: cfg,
    };
    let size = [64, 32];
    let mut swapped = 0;
    for r in &train {
        let (_, loaded) = load_sample(r, size).unwrap();
        let mirrored = flip.apply(&loaded, size).unwrap().expect("parsing mirrors");
        for y in 0..64 {
            for x in 0..32 {
                let before = loaded.values[y * 32 + x] as u8;
                let after = mirrored.values[y * 32 + 31 - x] as u8;
                let want = lip_mirror(before as usize) as u8;
                assert_eq!(after, want, "{} at ({x}, {y})", r.image);
                swapped += (want != before) as usize;
            }
        }
        let twice = flip.apply(&mirrored, size).unwrap().unwrap();
        assert_eq!(twice.values, loaded.values);
    }
    assert!(swapped > 0, "the synthetic people have arms and legs");
}

/// The flip test mirrors the second prediction's scores back, swaps left and right classes, and
/// averages.
#[test]
fn the_flip_test_averages_the_scores_mirrored_back() {
    let plugin = parsing();
    let th = TaskHead::build(
        plugin,
        config(&parsing(), &[("channels", 4.into())]),
        8,
        &Device::Cpu,
        0,
    )
    .unwrap();
    let (c, h, w) = (20usize, 2usize, 3usize);
    let scores = |f: &dyn Fn(usize, usize, usize) -> f32| Record {
        values: (0..c * h * w)
            .map(|i| f(i / (h * w), i / w % h, i % w))
            .collect::<Vec<f32>>()
            .into(),
        shape: vec![c as u64, h as u64, w as u64].into(),
        ..Default::default()
    };
    let a = scores(&|k, y, x| (k * 100 + y * 10 + x) as f32);
    let b = scores(&|k, y, x| (k * 1000 + y * 7 + x * 3) as f32);
    let merged = th
        .merge_flip(&a, &b)
        .unwrap()
        .expect("parsing has a flip test");
    for k in 0..c {
        for y in 0..h {
            for x in 0..w {
                let from_b = (lip_mirror(k) * 1000 + y * 7 + (w - 1 - x) * 3) as f32;
                let want = 0.5 * ((k * 100 + y * 10 + x) as f32 + from_b);
                assert_eq!(
                    merged.values[(k * h + y) * w + x],
                    want,
                    "class {k} at ({x}, {y})"
                );
            }
        }
    }
}

/// `clasp eval --task parsing --input pred_dir=P --input gt_dir=G` on the torchmetrics fixture's maps,
/// written as PNGs, gives the fixture's figures; a missing prediction is named.
#[test]
fn clasp_eval_scores_label_folders_like_torchmetrics() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("parsing_metrics.json")).unwrap(),
    )
    .unwrap();
    let maps =
        candle_core::safetensors::load(fixtures.join("parsing_maps.safetensors"), &Device::Cpu)
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (pred_dir, gt_dir) = (dir.path().join("pred"), dir.path().join("gt"));
    for (key, folder) in [("prediction", &pred_dir), ("truth", &gt_dir)] {
        std::fs::create_dir_all(folder).unwrap();
        let t = &maps[key];
        let (n, h, w) = t.dims3().unwrap();
        for i in 0..n {
            let px = t
                .get(i)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<u8>()
                .unwrap();
            image::GrayImage::from_raw(w as u32, h as u32, px)
                .unwrap()
                .save(folder.join(format!("img{i}.png")))
                .unwrap();
        }
    }
    let run = |extra: &[&str]| {
        let out = dir.path().join("metrics.json");
        let r = std::process::Command::new(common::plugin_libs::clasp_exe())
            .args(["eval", "--task", "parsing", "--input"])
            .arg(input("pred_dir", &pred_dir))
            .arg("--input")
            .arg(input("gt_dir", &gt_dir))
            .args(extra)
            .arg("--out")
            .arg(&out)
            .env("CLASP_PLUGIN_PATH", library("clasp_plugin_parsing"))
            .output()
            .unwrap();
        (r, out)
    };
    let (r, out) = run(&[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for (ours, theirs) in [("mIoU", "miou"), ("pixel_accuracy", "pixel_accuracy")] {
        let (g, w) = (
            got["metrics"][ours].as_f64().unwrap(),
            golden[theirs].as_f64().unwrap(),
        );
        assert!((g - w).abs() <= 1e-6, "{ours}: {g} vs {w}");
    }
    std::fs::remove_file(pred_dir.join("img3.png")).unwrap();
    let (r, _) = run(&[]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        stderr.contains("img3.png") && stderr.contains("no prediction"),
        "{stderr}"
    );
}

/// mIoU of the most frequent training class at each pixel position (the people are roughly
/// aligned in their crops, so this "mean shape" is a strong baseline, not chance).
fn position_prior_miou(train: &[Record], test: &[Record], plugin: &Plugin, cfg: &str) -> f64 {
    let size = [128, 64];
    let n = size[0] * size[1];
    let mut counts = vec![[0u32; 20]; n];
    for r in train {
        let (_, l) = load_sample(r, size).unwrap();
        for (c, v) in counts.iter_mut().zip(l.values.iter()) {
            if *v < 20.0 {
                c[*v as usize] += 1;
            }
        }
    }
    let prior: Vec<usize> = counts
        .iter()
        .map(|c| (0..20).max_by_key(|k| c[*k]).unwrap())
        .collect();
    // As class scores at full resolution, so the plugin's own evaluation scores them.
    let mut scores = vec![0f32; 20 * n];
    for (p, k) in prior.iter().enumerate() {
        scores[k * n + p] = 1.0;
    }
    let pred = Record {
        values: scores.into(),
        shape: vec![20, size[0] as u64, size[1] as u64].into(),
        ..Default::default()
    };
    let th = TaskHead::build(plugin.clone(), cfg.to_string(), 16, &Device::Cpu, 0).unwrap();
    let targets: Vec<Record> = test
        .iter()
        .map(|r| load_sample(r, size).unwrap().1)
        .collect();
    let preds = vec![pred; targets.len()];
    th.evaluate(&preds, &targets).unwrap()[0].value
}

/// Issue #5's bar for parsing: a nano backbone fine-tuned from random weights on synthetic
/// people parses people it never saw far above chance (its own predictions dealt to other test
/// images) and is compared with the position prior.
#[test]
fn parsing_finetuning_beats_chance() {
    use clasp_core::finetune::evaluate;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    let data = synth(LEARNING_IDENTITIES, 2, 4, 23, [128, 64]);
    let root = data.path().join("parsing");
    let run = finetune_from_scratch(
        "parsing",
        &root,
        LEARNING_EPOCHS,
        &[
            // Small batches: a dense loss wants many updates more than large batches.
            "finetune.batch_size=8",
            "optim.lr=2e-3",
            "task.channels=32",
        ],
    );
    let (model, config, out, secs) = (&run.model, &run.config, &run.outcome, run.seconds);
    let plugin = model.head.plugin.clone();
    let cfg = model.head.config.clone();
    let train = dataset(&plugin, &cfg, &root, Split::Train).unwrap();
    let test = dataset(&plugin, &cfg, &root, Split::Test).unwrap();
    let eval = evaluate(
        model,
        test.clone(),
        &config.finetune,
        config.data.max_skipped_fraction,
        &Device::Cpu,
    )
    .unwrap();
    let miou = eval.metric("mIoU").unwrap();
    let acc = eval.metric("pixel_accuracy").unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut shuffled = eval.predictions.clone();
    let chance = (0..5)
        .map(|_| {
            shuffled.shuffle(&mut rng);
            model.head.evaluate(&shuffled, &eval.targets).unwrap()[0].value
        })
        .fold(f64::MIN, f64::max);
    let prior = position_prior_miou(&train, &test, &plugin, &cfg);
    println!(
        "parsing: mIoU {miou:.4}, pixel accuracy {acc:.4} on {} unseen images after \
         {LEARNING_EPOCHS} epochs on {} ({secs:.0} s); shuffled-prediction mIoU max {chance:.4} \
         over 5 shuffles; position prior mIoU {prior:.4}",
        test.len(),
        train.len()
    );
    assert!(miou >= chance + 0.03, "mIoU {miou} vs chance {chance}");
    assert!(
        miou >= prior + 0.01,
        "mIoU {miou} vs the position prior {prior}"
    );

    // `clasp predict` draws the overlay of a test image.
    let (stdout, drawn) = predict_pictures(&out.checkpoint, &[test[0].image.as_str()], "parsing");
    println!("{stdout}");
    assert_eq!(drawn.len(), 1, "{drawn:?}");
}

/// The learning test's budget: identities rendered (half train, two images each) and epochs.
const LEARNING_IDENTITIES: u32 = 600;
const LEARNING_EPOCHS: usize = 12;
