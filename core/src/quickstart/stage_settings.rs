//! The settings a quickstart stage ran under, kept in its folder: a rerun reuses a finished
//! stage, and resumes an interrupted one, only when they are the settings the stage gets now.
//! Otherwise the stage runs again (its old folder moved aside), so a changed budget, `--set` or
//! default does not leave results of other settings in the report. Compared are the config
//! sections the stage reads and, for a read of a pre-trained backbone, that pre-training's
//! settings and the result it left (a pre-training run again under the same settings gives its
//! reads a new backbone). Not compared: the code (a binary that computes otherwise under the same
//! settings reuses old results) and what the stages before pre-training made — the synthetic sets
//! and the teacher are checked where they are made, the label cache by its own settings check.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::protocol::Protocol;
use super::stage::Stage;
use crate::checkpoint::checkpointer::differing_keys;
use crate::config::Config;

/// The file in a stage's run folder.
pub const FILE: &str = "quickstart-settings.json";

/// How many differing keys a message lists before it counts the rest.
const KEYS_SHOWN: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSettings {
    /// The config sections the stage reads, as resolved.
    pub config: Value,
    /// The settings of the pre-training whose checkpoint the stage reads.
    pub backbone: Option<Box<StageSettings>>,
    /// sha256 of the result that pre-training left (`done.json`: its checkpoint, steps, losses,
    /// seconds), so a pre-training run again gives its reads a new backbone.
    #[serde(default)]
    pub backbone_result: Option<String>,
}

/// What a read's backbone is: the pre-training's settings and the result it left.
pub struct Backbone {
    pub settings: StageSettings,
    /// sha256 of its `done.json`; `None` while it has not finished.
    pub result: Option<String>,
}

/// The config sections a stage never reads: a change there leaves its result valid (probe
/// epochs do not make pre-training run again). The teacher and the labels were made before any
/// stage: pre-training reads the label cache and the teacher's folder, not their settings.
fn unread_sections(stage: &Stage) -> &'static [&'static str] {
    match stage {
        Stage::Pretrain { .. } => &["finetune", "probe", "task", "teacher", "label"],
        // Fine-tuning and probes read a checkpoint, not the labels or the teacher that made it
        // (the teacher's text embeds a new task prompt through `model.prompts.teacher`).
        Stage::Read {
            protocol: Protocol::Finetune,
            ..
        } => &["pretrain", "teacher", "label", "probe"],
        Stage::Read { .. } => &["pretrain", "teacher", "label"],
    }
}

impl StageSettings {
    /// `stage`'s settings under `config`, reading `backbone`.
    pub fn of(config: &Config, stage: &Stage, backbone: Option<Backbone>) -> Result<Self> {
        let mut value = serde_json::to_value(config)?;
        if let Value::Object(sections) = &mut value {
            for s in unread_sections(stage) {
                sections.remove(*s);
            }
            // Where the stage's folder is and where the binary's plugins are (the folder of
            // whichever `clasp` runs) change no result; the plugins' pinned hashes stay.
            for (section, key) in [("run", "dir"), ("run", "name"), ("plugins", "dirs")] {
                if let Some(Value::Object(keys)) = sections.get_mut(section) {
                    keys.remove(key);
                }
            }
        }
        // As it reads back from the file, so floats compare equal to a saved copy.
        let config = serde_json::from_str(&serde_json::to_string(&value)?)?;
        let (backbone, backbone_result) = match backbone {
            Some(b) => (Some(Box::new(b.settings)), b.result),
            None => (None, None),
        };
        Ok(Self {
            config,
            backbone,
            backbone_result,
        })
    }

    /// The settings saved in the stage folder `dir`, if any (and readable).
    pub fn saved(dir: &Path) -> Option<Self> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(FILE)).ok()?).ok()
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE);
        std::fs::write(&path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Why the work saved under `saved` is not work under these settings; `None` when it is.
    pub fn differences(&self, saved: Option<&Self>) -> Option<String> {
        let Some(saved) = saved else {
            return Some(format!(
                "no record of the settings it ran under (no {FILE}: an earlier version's folder)"
            ));
        };
        let keys = differing_keys(&saved.config, &self.config);
        if !keys.is_empty() {
            let mut shown = keys[..keys.len().min(KEYS_SHOWN)].join(", ");
            if keys.len() > KEYS_SHOWN {
                shown += &format!(" and {} more", keys.len() - KEYS_SHOWN);
            }
            return Some(format!("ran under other settings: {shown}"));
        }
        match (&saved.backbone, &self.backbone) {
            (Some(a), Some(b)) => b
                .differences(Some(a))
                .map(|why| format!("read a backbone that {why}"))
                .or_else(|| match saved.backbone_result == self.backbone_result {
                    true => None,
                    false => Some("read a backbone that was pre-trained again since".into()),
                }),
            (None, None) => None,
            _ => Some("read another backbone (pre-trained, or random)".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::variants::{TASKS, VARIANTS};
    use super::*;

    fn pretraining() -> Stage {
        Stage::Pretrain {
            variant: &VARIANTS[3],
            seed_index: 0,
        }
    }

    fn read() -> Stage {
        Stage::Read {
            protocol: Protocol::Finetune,
            variant: &VARIANTS[3],
            task: &TASKS[2],
            seed_index: 0,
        }
    }

    /// Saved and read back, settings are the same; a key the stage reads that changed is named
    /// with both values, one it does not read is no change, and a read whose backbone was
    /// pre-trained otherwise says so.
    #[test]
    fn changes_the_stage_reads_are_named_and_others_ignored() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut c = Config::default();
        c.optim.lr = 0.1 + 0.2; // a float that must survive the file unchanged
        let p = StageSettings::of(&c, &pretraining(), None)?;
        let backbone = |settings: &StageSettings, result: &str| Backbone {
            settings: settings.clone(),
            result: Some(result.into()),
        };
        let r = StageSettings::of(&c, &read(), Some(backbone(&p, "run 1")))?;
        r.save(dir.path())?;
        let saved = StageSettings::saved(dir.path());
        assert_eq!(r.differences(saved.as_ref()), None);

        let mut unread = c.clone();
        unread.probe.epochs += 1;
        unread.teacher.epochs += 1;
        unread.run.dir = "elsewhere".into();
        unread.plugins.dirs = vec!["/another/binary's/folder".into()];
        let p2 = StageSettings::of(&unread, &pretraining(), None)?;
        assert_eq!(p2.differences(Some(&p)), None, "pre-training reads none");

        let mut epochs = c.clone();
        epochs.finetune.epochs = 40;
        let why = StageSettings::of(&epochs, &read(), Some(backbone(&p, "run 1")))?
            .differences(saved.as_ref())
            .unwrap();
        assert!(
            why.contains("`finetune.epochs` (saved 20, now 40)"),
            "{why}"
        );

        let mut longer = c.clone();
        longer.pretrain.epochs += 1;
        let p3 = StageSettings::of(&longer, &pretraining(), None)?;
        let why = StageSettings::of(&c, &read(), Some(backbone(&p3, "run 1")))?
            .differences(saved.as_ref())
            .unwrap();
        assert!(
            why.starts_with("read a backbone that ran under other settings: `pretrain.epochs`"),
            "{why}"
        );
        let why = StageSettings::of(&c, &read(), Some(backbone(&p, "run 2")))?
            .differences(saved.as_ref())
            .unwrap();
        assert!(why.contains("pre-trained again"), "{why}");
        let why = StageSettings::of(&c, &read(), None)?
            .differences(saved.as_ref())
            .unwrap();
        assert!(why.contains("another backbone"), "{why}");
        assert!(r.differences(None).unwrap().contains("no record"));
        Ok(())
    }
}
