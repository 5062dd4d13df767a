//! Settings of the CLIP teacher (`[teacher]`: what `clasp teacher train` builds and how long it
//! trains) and of pseudo-labelling (`[label]`: vocabularies, temperatures, margins, cache shards).

use crate::teacher::sentence_bank::Pooling;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeacherSettings {
    /// Synthetic dataset root (the folder `clasp synth` wrote, with `captions.jsonl`).
    #[serde(deserialize_with = "super::optional_path::none_when_empty")]
    pub data: Option<std::path::PathBuf>,
    /// Person-crop input `[H, W]` the teacher trains on (its `preprocessor_config.json` crop).
    pub img_size: [usize; 2],
    pub patch_size: usize,
    /// Vision tower width, depth and heads.
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    /// Text tower width, depth and heads.
    pub text_width: usize,
    pub text_layers: usize,
    pub text_heads: usize,
    /// Width of the joint embedding space.
    pub projection_dim: usize,
    /// Text positions (captions are word-tokenized; the longest synthetic caption is ~45 tokens).
    pub context: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    pub clip_grad: f64,
    /// Share of the loss from the one-thing-each aspect captions ("a person in boots"); the
    /// rest is CLIP's loss on the whole descriptions. The aspects teach attributes, the whole
    /// descriptions tell people apart. 0.8 over 0.5: pseudo-label attribute mA 0.682 vs 0.646
    /// and held-out retrieval top-1 0.416 vs 0.355 (10 epochs on 6,000 synthetic people).
    pub aspect_weight: f64,
    /// Initial ln(logit scale); CLIP's 2.6592 is 1/0.07. A larger start separates the nearly
    /// parallel text embeddings of a fresh text tower sooner (CLIP clamps it at ln 100 = 4.6052).
    pub logit_scale_init: f64,
    /// Loader threads.
    pub workers: usize,
}

impl Default for TeacherSettings {
    fn default() -> Self {
        Self {
            data: None,
            img_size: [128, 64],
            patch_size: 16,
            width: 128,
            layers: 3,
            heads: 2,
            text_width: 96,
            text_layers: 2,
            text_heads: 2,
            projection_dim: 96,
            context: 64,
            epochs: 30,
            batch_size: 32,
            lr: 5e-4,
            min_lr: 1e-5,
            weight_decay: 0.1,
            warmup_steps: 100,
            clip_grad: 1.0,
            aspect_weight: 0.8,
            logit_scale_init: 2.6592,
            workers: 2,
        }
    }
}

/// One part class: its name and the phrases whose text embeddings (each in every template) are
/// averaged into the class embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartPrompt {
    pub name: String,
    pub prompts: Vec<String>,
}

/// One attribute: sentences saying it is present and sentences saying it is not (each side an
/// ensemble).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributePrompt {
    pub name: String,
    pub positive: Vec<String>,
    pub negative: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelSettings {
    /// Input `[H, W]` the teacher sees when labelling; the part map is `H/patch × W/patch`.
    /// Unset: the teacher's own person-crop size when its `preprocessor_config.json` crop is not
    /// square (a teacher `clasp teacher train` made), else 256×128.
    pub img_size: Option<[usize; 2]>,
    pub batch_size: usize,
    /// Images per cache shard (the unit of resuming and of `--shard i/n`).
    pub shard_size: usize,
    /// Softmax temperature over the part similarities.
    pub part_temperature: f64,
    /// Templates each part phrase is put into (`{}` is the phrase).
    pub part_templates: Vec<String>,
    pub parts: Vec<PartPrompt>,
    /// Temperature of the positive-vs-negative softmax (CLIP's logit scale is 1/0.01).
    pub attribute_temperature: f64,
    /// How a part's or an attribute side's sentences make one score: `embedding` (CLIP's
    /// template averaging: the normalised mean embedding; the default) or `likelihood`
    /// (log-mean-exp of their logits at the temperature: for sides that name different things,
    /// "a child" or "an old person").
    pub ensemble: Pooling,
    /// Attributes with |p − ½| below this are ignored by the pre-training loss.
    pub attribute_margin: f64,
    pub attributes: Vec<AttributePrompt>,
    /// Label even when prompts hold words the teacher's tokenizer does not know (they embed as
    /// its unknown-word token, so the class they stand for is averaged with noise); by default
    /// such a vocabulary is refused, naming the prompts.
    pub allow_unknown_words: bool,
}

fn part(name: &str, prompts: &[&str]) -> PartPrompt {
    PartPrompt {
        name: name.into(),
        prompts: prompts.iter().map(|p| p.to_string()).collect(),
    }
}

fn attribute(name: &str, positive: &[&str], negative: &[&str]) -> AttributePrompt {
    let own = |v: &[&str]| v.iter().map(|p| p.to_string()).collect();
    AttributePrompt {
        name: name.into(),
        positive: own(positive),
        negative: own(negative),
    }
}

/// PA-100K's 26 attributes as sentence pairs, in PA-100K's order.
pub fn pa100k_attribute_prompts() -> Vec<AttributePrompt> {
    vec![
        attribute(
            "Female",
            &["a photo of a woman", "a photo of a girl"],
            &["a photo of a man", "a photo of a boy"],
        ),
        attribute(
            "AgeOver60",
            &["a photo of an old person"],
            &["a photo of an adult", "a photo of a child"],
        ),
        attribute(
            "Age18-60",
            &["a photo of an adult"],
            &["a photo of a child", "a photo of an old person"],
        ),
        attribute(
            "AgeLess18",
            &["a photo of a child"],
            &["a photo of an adult", "a photo of an old person"],
        ),
        attribute(
            "Front",
            &["a person seen from the front"],
            &["a person seen from behind", "a person seen from the side"],
        ),
        attribute(
            "Side",
            &["a person seen from the side"],
            &["a person seen from the front", "a person seen from behind"],
        ),
        attribute(
            "Back",
            &["a person seen from behind"],
            &[
                "a person seen from the front",
                "a person seen from the side",
            ],
        ),
        attribute("Hat", &["a person with a hat"], &["a person without a hat"]),
        attribute(
            "Glasses",
            &["a person with glasses"],
            &["a person without glasses"],
        ),
        attribute(
            "HandBag",
            &["a person carrying a handbag"],
            &["a person with no bag"],
        ),
        attribute(
            "ShoulderBag",
            &["a person carrying a shoulder bag"],
            &["a person with no bag"],
        ),
        attribute(
            "Backpack",
            &["a person carrying a backpack"],
            &["a person with no bag"],
        ),
        attribute(
            "HoldObjectsInFront",
            &["a person carrying a box"],
            &["a person with no bag"],
        ),
        attribute(
            "ShortSleeve",
            &["a person in short sleeves"],
            &["a person in long sleeves"],
        ),
        attribute(
            "LongSleeve",
            &["a person in long sleeves"],
            &["a person in short sleeves"],
        ),
        attribute(
            "UpperStride",
            &["a person in a striped top"],
            &["a person in a plain top"],
        ),
        attribute(
            "UpperLogo",
            &["a person in a top with a logo"],
            &["a person in a plain top"],
        ),
        attribute(
            "UpperPlaid",
            &["a person in a plaid top"],
            &["a person in a plain top"],
        ),
        attribute(
            "UpperSplice",
            &["a person in a two-coloured top"],
            &["a person in a plain top"],
        ),
        attribute(
            "LowerStripe",
            &[
                "a person in striped trousers",
                "a person in striped shorts",
                "a person in a striped skirt",
            ],
            &[
                "a person in plain trousers",
                "a person in plain shorts",
                "a person in a plain skirt",
            ],
        ),
        attribute(
            "LowerPattern",
            &[
                "a person in polka-dot trousers",
                "a person in polka-dot shorts",
                "a person in a polka-dot skirt",
            ],
            &[
                "a person in plain trousers",
                "a person in plain shorts",
                "a person in a plain skirt",
            ],
        ),
        attribute(
            "LongCoat",
            &["a person with a coat"],
            &["a person without a coat"],
        ),
        attribute(
            "Trousers",
            &["a person in trousers"],
            &[
                "a person in shorts",
                "a person in a skirt",
                "a person in a dress",
            ],
        ),
        attribute(
            "Shorts",
            &["a person in shorts"],
            &[
                "a person in trousers",
                "a person in a skirt",
                "a person in a dress",
            ],
        ),
        attribute(
            "Skirt&Dress",
            &["a person in a skirt", "a person in a dress"],
            &["a person in trousers", "a person in shorts"],
        ),
        attribute("boots", &["a person in boots"], &["a person in shoes"]),
    ]
}

impl Default for LabelSettings {
    fn default() -> Self {
        Self {
            img_size: None,
            batch_size: 32,
            shard_size: 256,
            part_temperature: 0.05,
            part_templates: vec!["a photo of {}".into(), "{}".into()],
            parts: vec![
                part(
                    "background",
                    &[
                        "the background",
                        "an empty street with no person",
                        "a wall and the ground",
                    ],
                ),
                part("head", &["a head", "a face", "hair", "a hat"]),
                part("upper body", &["a shirt", "a top", "a coat"]),
                part("arms", &["arms", "sleeves", "hands"]),
                part("lower body", &["trousers", "shorts", "a skirt"]),
                part("feet", &["shoes", "boots", "feet"]),
            ],
            attribute_temperature: 0.01,
            ensemble: Pooling::default(),
            attribute_margin: 0.1,
            attributes: pa100k_attribute_prompts(),
            allow_unknown_words: false,
        }
    }
}
