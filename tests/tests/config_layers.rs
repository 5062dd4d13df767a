//! Layered config: defaults → file → CLASP_* env → --set, and errors that name key and source.

use std::io::Write;

use clasp_core::config::{model::vit_config, Config, ConfigSources};

fn sources(file: Option<&std::path::Path>, sets: &[&str]) -> ConfigSources {
    ConfigSources {
        file: file.map(|p| p.to_path_buf()),
        overrides: sets.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

#[test]
fn defaults_load_and_build_a_model() {
    let c = sources(None, &[]).load().unwrap();
    assert_eq!(c, Config::default());
    let vit = vit_config(&c.model).unwrap();
    assert_eq!(vit.embed_dim, 384);
    assert_eq!(vit.moe.unwrap().blocks, (0..12).collect::<Vec<_>>());
}

#[test]
fn later_layers_win() {
    let f = toml_file("[model]\npreset = \"tiny\"\n[optim]\nlr = 0.1\n");
    let c = sources(
        Some(f.path()),
        &["optim.lr=0.25", "model.moe.blocks=\"last:3\""],
    )
    .load()
    .unwrap();
    assert_eq!(c.model.preset.name(), "tiny");
    assert_eq!(c.optim.lr, 0.25);
    assert_eq!(
        vit_config(&c.model).unwrap().moe.unwrap().blocks,
        vec![9, 10, 11]
    );
}

#[test]
fn unknown_key_in_a_file_names_key_and_file() {
    let f = toml_file("[model]\nnonsense = 1\n");
    let err = format!("{:#}", sources(Some(f.path()), &[]).load().unwrap_err());
    assert!(err.contains("`model.nonsense`"), "{err}");
    assert!(err.contains(&f.path().display().to_string()), "{err}");
}

#[test]
fn unknown_key_and_wrong_type_from_set_name_the_flag() {
    let err = format!(
        "{:#}",
        sources(None, &["model.nonsense=1"]).load().unwrap_err()
    );
    assert!(
        err.contains("`model.nonsense`") && err.contains("--set"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        sources(None, &["optim.lr=fast"]).load().unwrap_err()
    );
    assert!(err.contains("`optim.lr`") && err.contains("--set"), "{err}");
    let err = format!("{:#}", sources(None, &["optim"]).load().unwrap_err());
    assert!(err.contains("key=value"), "{err}");
}

#[test]
fn environment_layer_and_its_errors() {
    // The only test in this binary that touches the environment.
    std::env::set_var("CLASP_MODEL__PRESET", "nano");
    std::env::set_var("CLASP_PLUGIN_PATH", "/not/a/config/key");
    // The fused-ops switch (read by `ops::fused_for`) is not a config key either.
    std::env::set_var("CLASP_COMPOSED_OPS", "1");
    // Nor are scripts/cuda/setup.sh's settings.
    std::env::set_var("CLASP_CUDA_CACHE", "/tmp/clasp-cuda");
    std::env::set_var("CLASP_CUDA_TOOLKIT", "13.0");
    let env = ConfigSources {
        use_env: true,
        ..Default::default()
    };
    assert_eq!(env.load().unwrap().model.preset.name(), "nano");
    // --set beats the environment.
    let mut with_set = env.clone();
    with_set.overrides.push("model.preset=tiny".into());
    assert_eq!(with_set.load().unwrap().model.preset.name(), "tiny");
    std::env::set_var("CLASP_OPTIM__WARMUP_STEPS", "soon");
    let err = format!("{:#}", env.load().unwrap_err());
    std::env::remove_var("CLASP_OPTIM__WARMUP_STEPS");
    std::env::remove_var("CLASP_MODEL__PRESET");
    std::env::remove_var("CLASP_PLUGIN_PATH");
    std::env::remove_var("CLASP_COMPOSED_OPS");
    std::env::remove_var("CLASP_CUDA_CACHE");
    std::env::remove_var("CLASP_CUDA_TOOLKIT");
    assert!(
        err.contains("`optim.warmup_steps`") && err.contains("CLASP_"),
        "{err}"
    );
}

#[test]
fn values_are_validated_with_their_key() {
    for (set, key) in [
        ("model.preset=huge", "model.preset"),
        ("model.img_size=[250, 128]", "model.img_size"),
        ("model.moe.blocks=\"some\"", "model.moe.blocks"),
        ("model.moe.top_k=9", "model.moe.top_k"),
        ("run.device=\"tpu\"", "run.device"),
        ("finetune.sampler=\"balanced\"", "finetune.sampler"),
        ("run.name=\"../elsewhere\"", "run.name"),
        ("run.name=\"\"", "run.name"),
        ("optim.beta2=-3", "optim.beta2"),
        ("optim.min_lr=1", "optim.min_lr"),
        ("pretrain.crops.flip_p=7", "pretrain.crops.flip_p"),
        ("pretrain.crops.ratio=[-1.0, 2.0]", "pretrain.crops.ratio"),
        ("probe.seeds=0", "probe.seeds"),
        ("optim.layer_decay=1.5", "optim.layer_decay"),
        ("teacher.aspect_weight=1.5", "teacher.aspect_weight"),
        ("label.ensemble=\"average\"", "label.ensemble"),
        ("optim.head_lr_scale=0", "optim.head_lr_scale"),
        ("finetune.accumulate=0", "finetune.accumulate"),
    ] {
        let err = format!("{:#}", sources(None, &[set]).load().unwrap_err());
        assert!(err.contains(&format!("`{key}`")), "{set}: {err}");
    }
    let c = sources(None, &["label.ensemble=\"likelihood\""])
        .load()
        .unwrap();
    assert_eq!(
        c.label.ensemble,
        clasp_core::teacher::sentence_bank::Pooling::Likelihood
    );
    let c = sources(None, &["model.moe.blocks=\"3,20\""])
        .load()
        .unwrap();
    let err = format!("{:#}", vit_config(&c.model).unwrap_err());
    assert!(err.contains("block 20 does not exist"), "{err}");
}

#[test]
fn resolved_config_round_trips_through_toml() {
    let c = sources(None, &["model.preset=tiny", "optim.lr=0.003"])
        .load()
        .unwrap();
    let text = clasp_core::config::to_toml(&c).unwrap();
    let f = toml_file(&text);
    assert_eq!(clasp_core::config::load::load_file(f.path()).unwrap(), c);
}

/// NaN and infinities pass a `<= 0` range check: every float setting is refused by its key.
#[test]
fn non_finite_numbers_are_refused_by_key() {
    for (set, key) in [
        ("optim.lr=nan", "optim.lr"),
        (
            "pretrain.dino.teacher_temp=inf",
            "pretrain.dino.teacher_temp",
        ),
        ("optim.weight_decay=-inf", "optim.weight_decay"),
    ] {
        assert_refused(set, key, "not a finite number");
    }
}

/// A fixed-size setting given too many elements is refused, not cut to its first ones.
#[test]
fn an_array_longer_than_its_setting_is_refused_by_key() {
    let err = sources(None, &["model.img_size=[64, 32, 3]"])
        .load()
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("`model.img_size`") && msg.contains("3 elements given, expected 2"),
        "{msg}"
    );
    assert_eq!(
        sources(None, &["model.img_size=[64, 32]"])
            .load()
            .unwrap()
            .model
            .img_size,
        [64, 32]
    );
}

/// A zero size is refused when the config loads, not turned into 1 behind the resolved config.
#[test]
fn zero_sizes_are_refused_by_key() {
    for key in [
        "finetune.batch_size",
        "finetune.epochs",
        "finetune.eval_every",
    ] {
        assert_refused(&format!("{key}=0"), key, "at least 1");
    }
}

/// Choices are enums and absences `Option`s, read from the spellings configs always used.
#[test]
fn typed_settings_read_their_usual_spellings() {
    use clasp_core::config::model::BlockSpec;
    use clasp_core::config::schema::BatchOrder;
    use clasp_core::device::DeviceSpec;
    let c = sources(
        None,
        &[
            "model.preset=\"tiny\"",
            "model.moe.top_k=0",
            "model.moe.blocks=\"last:2\"",
            "run.device=\"cuda\"",
            "finetune.sampler=\"identity\"",
            "finetune.data=\"\"",
            "pretrain.labels=\"cache\"",
        ],
    )
    .load()
    .unwrap();
    assert_eq!(c.model.preset, clasp_core::model::Preset::Tiny);
    assert_eq!(c.model.moe.top_k, None, "0 is dense, as before");
    assert_eq!(c.model.moe.blocks, BlockSpec::Last(2));
    assert_eq!(c.run.device, DeviceSpec::Cuda(0));
    assert_eq!(c.finetune.sampler, BatchOrder::Identity);
    assert_eq!(c.finetune.data, None, "an empty path is unset, as before");
    assert_eq!(
        c.pretrain.labels.as_deref(),
        Some(std::path::Path::new("cache"))
    );
    let c = sources(None, &["model.moe.top_k=2", "model.moe.blocks=\"8,9\""])
        .load()
        .unwrap();
    assert_eq!(c.model.moe.top_k, Some(2));
    assert_eq!(c.model.moe.blocks, BlockSpec::List(vec![8, 9]));
    // The resolved config writes them back in the same spellings, and reads back equal.
    let text = clasp_core::config::to_toml(&c).unwrap();
    assert!(
        text.contains("blocks = \"8,9\"") && text.contains("device = \"cpu\""),
        "{text}"
    );
    let f = toml_file(&text);
    assert_eq!(sources(Some(f.path()), &[]).load().unwrap(), c);
}

/// Loading with `--set {set}` fails, naming `key` and saying `words`.
fn assert_refused(set: &str, key: &str, words: &str) {
    let msg = format!("{:#}", sources(None, &[set]).load().unwrap_err());
    assert!(
        msg.contains(&format!("`{key}`")) && msg.contains(words),
        "{set}: {msg}"
    );
}

/// Every typed setting (a choice, an optional number or path) refuses a wrong value with its key
/// and the layer it came from: the command line, a file, or the quickstart's stage settings.
#[test]
fn every_typed_setting_names_key_and_source_of_a_wrong_value() {
    use clasp_core::config::overrides::Overrides;
    let wrong: [(&str, toml::Value); 7] = [
        ("model.preset", "huge".into()),
        ("model.moe.blocks", "last:x".into()),
        ("model.moe.top_k", (-1).into()),
        ("run.device", "tpu".into()),
        ("finetune.sampler", "random".into()),
        ("finetune.data", 3.into()),
        ("pretrain.labels", true.into()),
    ];
    for (key, value) in wrong {
        let check = |sources: ConfigSources, source: &str| {
            let msg = format!("{:#}", sources.load().unwrap_err());
            assert!(
                msg.contains(&format!("`{key}`")) && msg.contains(source),
                "{key} = {value} from {source}: {msg}"
            );
        };
        check(
            sources(None, &[&format!("{key}={value}")]),
            "command-line --set",
        );
        let (table, leaf) = key.rsplit_once('.').unwrap();
        let file = toml_file(&format!("[{table}]\n{leaf} = {value}\n"));
        check(
            sources(Some(file.path()), &[]),
            &file.path().display().to_string(),
        );
        let stage = ConfigSources {
            program: Overrides::new().set(key, value.clone()),
            ..Default::default()
        };
        check(stage, "the quickstart's stage settings");
    }
}
