//! The names of the anomaly scores a job can ask for, and their fixed display ranges.

use serde::{Deserialize, Serialize};

/// One anomaly score. The names are the job's `method.scores` entries and the output folder names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    Maskomaly,
    Rba,
    Eam,
    Energy,
    Msp,
    Entropy,
}

impl ScoreKind {
    pub const ALL: [ScoreKind; 6] = [
        ScoreKind::Maskomaly,
        ScoreKind::Rba,
        ScoreKind::Eam,
        ScoreKind::Energy,
        ScoreKind::Msp,
        ScoreKind::Entropy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ScoreKind::Maskomaly => "maskomaly",
            ScoreKind::Rba => "rba",
            ScoreKind::Eam => "eam",
            ScoreKind::Energy => "energy",
            ScoreKind::Msp => "msp",
            ScoreKind::Entropy => "entropy",
        }
    }

    pub fn from_name(name: &str) -> Option<ScoreKind> {
        ScoreKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// `maskomaly, rba, eam, energy, msp, entropy`: for messages.
    pub fn valid_names() -> String {
        ScoreKind::ALL.map(ScoreKind::as_str).join(", ")
    }

    /// Whether the score reads the semantic map `S'`.
    pub fn reads_semantic(self) -> bool {
        matches!(
            self,
            ScoreKind::Rba | ScoreKind::Energy | ScoreKind::Msp | ScoreKind::Entropy
        )
    }

    /// The fixed value range that PNG and heatmap outputs map linearly onto [0, 1] for a model with
    /// `classes` inlier classes K. `lo` is the score of a pixel one inlier class claims fully (one
    /// query with class probability 1 and mask probability 1, so `S'` is one-hot), `hi` the score of a
    /// pixel nothing claims (`S' = 0`). Values outside are clamped.
    pub fn display_range(self, classes: usize) -> (f64, f64) {
        let k = classes.max(1) as f64;
        match self {
            ScoreKind::Maskomaly | ScoreKind::Eam | ScoreKind::Msp => (0.0, 1.0),
            // −tanh(1) (one class at 1, the rest at 0) … 0.
            ScoreKind::Rba => (-(1f64.tanh()), 0.0),
            // −ln(e + K − 1) … −ln K.
            ScoreKind::Energy => (-(std::f64::consts::E + k - 1.0).ln(), -k.ln()),
            // 0 (one-hot) … ln K (uniform, and by convention where Σ S' = 0).
            ScoreKind::Entropy => (0.0, k.ln()),
        }
    }
}

impl std::fmt::Display for ScoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
