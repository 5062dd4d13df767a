//! Library use of clasp-core: config → backbone → features for two task prompts → gate folding.

use anyhow::Result;
use candle_core::{Device, Tensor};
use clasp_core::backbone::Backbone;
use clasp_core::config::ConfigSources;

fn main() -> Result<()> {
    // Defaults, then any CLASP_* variables, then these overrides: the CLI's own layering.
    let config = ConfigSources {
        overrides: vec!["model.preset=nano".into()],
        use_env: true,
        ..Default::default()
    }
    .load()?;
    let device = Device::Cpu;
    let backbone = Backbone::fresh(&config, &device, String::new())?;
    let [h, w] = config.model.img_size;
    let images = Tensor::randn(0f32, 1.0, (2, 3, h, w), &device)?;

    for task in ["ssl", "part"] {
        let out = backbone.vit.forward(&images, Some(task))?;
        println!(
            "{task}: CLS {:?}, patch map {:?}",
            out.cls.dims(),
            out.patches.dims()
        );
    }
    // Inference runs the folded model: PC-MoE gates of one task baked into plain MLPs.
    let folded = backbone.for_inference(Some("part"), config.model.moe.fold_threshold)?;
    let a = backbone.vit.forward(&images, Some("part"))?.cls;
    let b = folded.forward(&images, Some("part"))?.cls;
    let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    println!(
        "folded vs unfolded max |ΔCLS| = {diff:.2e}; MFLOPs/image {:.1} → {:.1}",
        backbone.vit.flops(h, w) as f64 / 1e6,
        folded.flops(h, w) as f64 / 1e6
    );
    Ok(())
}
