//! How the quickstart reads a backbone on a task: a probe trained on its frozen features, nearest
//! neighbour on its frozen CLS, or fine-tuning. Names the run folders and the report's sections.

use serde::{Deserialize, Serialize};

use super::variants::QuickTask;

/// How the backbones were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// Heads trained on frozen features.
    Probe,
    /// Retrieval by nearest neighbour on the frozen CLS token: nothing that retrieval reads is
    /// trained, so it shows what the features hold before any probe learns a metric.
    NearestNeighbour,
    /// Backbone and head trained together.
    Finetune,
}

impl Protocol {
    /// In the report's order.
    pub const ALL: [Protocol; 3] = [
        Protocol::Probe,
        Protocol::NearestNeighbour,
        Protocol::Finetune,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Protocol::Probe => "Frozen-backbone probes",
            Protocol::NearestNeighbour => "Nearest neighbour on the frozen CLS",
            Protocol::Finetune => "Fine-tuning",
        }
    }

    /// The prefix of its run folders: `<key>-<variant>-<task>`.
    pub fn key(self) -> &'static str {
        match self {
            Protocol::Probe => "probe",
            Protocol::NearestNeighbour => "nn",
            Protocol::Finetune => "finetune",
        }
    }

    /// Whether the report reads task `t` this way.
    pub fn reads(self, t: &QuickTask) -> bool {
        self != Protocol::NearestNeighbour || t.nearest_neighbour
    }
}
