//! A teacher ready to label person crops: the CLIP, its class sentences (part vocabulary and
//! attribute sentence pairs, each pooled over its prompts), the labelling input size and what
//! identifies it all in a cache (teacher fingerprint, vocabulary).

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::clip::Clip;
use super::preprocess::ClipPreprocess;
use super::pseudo_labels::{attribute_probabilities, part_labels};
use super::sentence_bank::SentenceBank;
use super::tokenizer::ClipTokenizer;
use super::word_tokenizer::UNKNOWN;
use crate::config::teacher::LabelSettings;

/// Where no size is configured and the teacher's own crop is square (e.g. OpenAI's 224×224).
pub const DEFAULT_LABEL_SIZE: [usize; 2] = [256, 128];

/// Pseudo-labels of a batch, image-major.
#[derive(Debug, Clone, Default)]
pub struct BatchLabels {
    /// Part class per patch `[B · gh · gw]`.
    pub parts: Vec<u8>,
    pub confidence: Vec<f32>,
    /// Attribute probabilities `[B · A]`.
    pub attributes: Vec<f32>,
}

/// What a cache's labels depend on besides the teacher's weights.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Vocabulary {
    pub img_size: [usize; 2],
    pub grid: [usize; 2],
    pub part_names: Vec<String>,
    pub attribute_names: Vec<String>,
    /// The full label settings (prompts, templates, temperatures), as TOML-equal JSON.
    pub settings: serde_json::Value,
}

pub struct Labeller {
    pub clip: Clip,
    pub prep: ClipPreprocess,
    pub vocabulary: Vocabulary,
    parts: SentenceBank,
    positive: SentenceBank,
    negative: SentenceBank,
    part_temperature: f64,
    attribute_temperature: f64,
    /// Prompt words the teacher's tokenizer does not know (they embed as `<|unk|>`).
    pub unknown_words: Vec<String>,
}

/// sha256 over the files that make a teacher what it is.
pub fn teacher_fingerprint(dir: &Path) -> Result<String> {
    let mut h = Sha256::new();
    for name in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
    ] {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        h.update(name.as_bytes());
        let mut f =
            std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(format!("{:x}", h.finalize()))
}

impl Labeller {
    pub fn new(dir: &Path, settings: &LabelSettings, device: &Device) -> Result<Self> {
        let clip = Clip::load(dir, device)?;
        let prep = ClipPreprocess::from_dir(dir)?;
        let tok = ClipTokenizer::from_dir(dir, clip.config.text_config.max_position_embeddings)?
            .pad_to_longest();
        let img_size = settings
            .img_size
            .unwrap_or(if prep.crop[0] != prep.crop[1] {
                prep.crop
            } else {
                DEFAULT_LABEL_SIZE
            });
        let patch = clip.config.vision_config.patch_size;
        if img_size.iter().any(|s| *s == 0 || s % patch != 0) {
            anyhow::bail!(
                "config key `label.img_size`: {img_size:?} is not a multiple of the teacher's patch size {patch}"
            );
        }
        let unk = tok.token_id(UNKNOWN);
        let mut unknown_words = Vec::new();
        let mut embed_sentences = |texts: Vec<String>| -> Result<Tensor> {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let ids = tok.encode(&refs)?;
            if let Some(u) = unk {
                for (t, seq) in texts.iter().zip(&ids) {
                    if seq.contains(&u) && !unknown_words.contains(t) {
                        unknown_words.push(t.clone());
                    }
                }
            }
            Ok(clip.text_embeds(&ids)?.detach())
        };
        let mut parts = Vec::new();
        for p in &settings.parts {
            let texts = p
                .prompts
                .iter()
                .flat_map(|phrase| {
                    settings
                        .part_templates
                        .iter()
                        .map(move |t| t.replace("{}", phrase))
                })
                .collect();
            parts.push(embed_sentences(texts)?);
        }
        let (mut positive, mut negative) = (Vec::new(), Vec::new());
        for a in &settings.attributes {
            positive.push(embed_sentences(a.positive.clone())?);
            negative.push(embed_sentences(a.negative.clone())?);
        }
        if !unknown_words.is_empty() && !settings.allow_unknown_words {
            bail!(
                "the teacher {} does not know words of these label prompts (they would embed as \
                 its unknown-word token): {}. Use prompts in its words (a teacher `clasp teacher \
                 train` made knows its captions' words: see configs/teacher/synthetic.toml), or \
                 set `label.allow_unknown_words = true`",
                dir.display(),
                unknown_words.join("; ")
            );
        }
        let p = clip.config.projection_dim;
        let bank = |v: Vec<Tensor>| SentenceBank::new(&v, settings.ensemble, p, device);
        Ok(Self {
            vocabulary: Vocabulary {
                img_size,
                grid: [img_size[0] / patch, img_size[1] / patch],
                part_names: settings.parts.iter().map(|p| p.name.clone()).collect(),
                attribute_names: settings.attributes.iter().map(|a| a.name.clone()).collect(),
                settings: serde_json::to_value(settings)?,
            },
            parts: bank(parts)?,
            positive: bank(positive)?,
            negative: bank(negative)?,
            part_temperature: settings.part_temperature,
            attribute_temperature: settings.attribute_temperature,
            unknown_words,
            clip,
            prep,
        })
    }

    /// Normalised pixels of one person crop at the labelling size.
    pub fn pixels(&self, img: &image::RgbImage) -> Vec<f32> {
        self.prep.person_pixels(img, self.vocabulary.img_size)
    }

    /// Labels of pixels `[B, 3, H, W]`.
    pub fn label(&self, pixels: &Tensor) -> Result<BatchLabels> {
        let (dense, img) = self.clip.dense_and_image_embeds(pixels)?;
        let parts = part_labels(&dense.detach(), &self.parts, self.part_temperature)?;
        let attributes = if self.positive.classes() == 0 {
            Vec::new()
        } else {
            attribute_probabilities(
                &img.detach(),
                &self.positive,
                &self.negative,
                self.attribute_temperature,
            )?
            .flatten_all()?
            .to_vec1::<f32>()?
        };
        Ok(BatchLabels {
            parts: parts.labels,
            confidence: parts.confidence,
            attributes,
        })
    }
}
