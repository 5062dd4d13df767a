//! The pose task's settings (its `[task]` table).

use clasp_sdk::upsample::Upsampling;
use clasp_sdk::{ensure_in, fail, Pool, Result, Settings, UpsampleHead, MAX_WIDTH};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The head on the backbone's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// Heatmaps from the patch map grown by transposed 4×4 convolutions (stride 2), each step
    /// followed by batch norm and ReLU.
    Deconv,
    /// Heatmaps from the patch map grown by nearest ×2 + 3×3 convolutions.
    Nearest,
    /// The pooled features (`pool`) through a linear layer to the keypoints' positions, L1 loss
    /// (DeepPose).
    Regression,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PoseSettings {
    /// Head variant.
    pub head: Head,
    /// Regression head input: cls, mean (of the patch tokens) or cls+mean.
    pub pool: Pool,
    /// Regression head: width of a hidden ReLU layer (0: none).
    pub hidden: usize,
    /// Doubling steps of the heatmap head (2: stride-16 patches → stride-4 heatmaps).
    pub upsample_steps: usize,
    /// Channels of each upsampling step.
    pub channels: usize,
    /// Gaussian target radius, in heatmap pixels.
    pub sigma: f64,
    /// Give every patch token the CLS token and its (x, y) place in the crop before the head:
    /// which way the person faces and where a token sits, which a convolutional head on frozen
    /// features cannot see otherwise.
    pub global_context: bool,
    /// Width / height of the person crops: the model's input (256×128 → 0.5).
    pub aspect_ratio: f64,
    /// Person boxes are enlarged by this factor.
    pub box_padding: f64,
    /// Image folder under the dataset root.
    pub images: String,
    /// COCO keypoints file of the training split, under the dataset root.
    pub train_annotations: String,
    /// COCO keypoints file that epochs and recipes are chosen on (a missing file: no validation
    /// split).
    pub val_annotations: String,
    /// COCO keypoints file scored once, after selection (real COCO: val2017).
    pub test_annotations: String,
    /// Keypoints above this confidence make a person's score and are drawn.
    pub score_threshold: f64,
    /// PCK: a keypoint is correct within this fraction of its box's longer side.
    pub pck_threshold: f64,
}

impl Default for PoseSettings {
    fn default() -> Self {
        Self {
            head: Head::Deconv,
            pool: Pool::ClsMean,
            hidden: 0,
            upsample_steps: 2,
            channels: 256,
            sigma: 2.0,
            global_context: false,
            aspect_ratio: 0.5,
            box_padding: 1.25,
            images: "images".into(),
            train_annotations: "annotations/person_keypoints_train.json".into(),
            val_annotations: "annotations/person_keypoints_val.json".into(),
            test_annotations: "annotations/person_keypoints_test.json".into(),
            score_threshold: 0.2,
            pck_threshold: 0.2,
        }
    }
}

impl PoseSettings {
    /// The heatmap head's upsampling; `None` for the regression head.
    pub fn upsampling(&self) -> Option<UpsampleHead> {
        let kind = match self.head {
            Head::Deconv => Upsampling::Deconv,
            Head::Nearest => Upsampling::Nearest,
            Head::Regression => return None,
        };
        Some(UpsampleHead {
            kind,
            steps: self.upsample_steps,
            channels: self.channels,
        })
    }
}

impl Settings for PoseSettings {
    fn validate(&self) -> Result<()> {
        match self.upsampling() {
            Some(head) => head.check()?,
            None => ensure_in("hidden", self.hidden, 0, MAX_WIDTH)?,
        }
        for (key, value) in [
            ("sigma", self.sigma),
            ("aspect_ratio", self.aspect_ratio),
            ("box_padding", self.box_padding),
        ] {
            if value <= 0.0 {
                fail!(config: "task.{key} = {value} must be positive");
            }
        }
        Ok(())
    }
}
