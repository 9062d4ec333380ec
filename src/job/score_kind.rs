//! The names of the anomaly scores a job can ask for, and their fixed display ranges.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use strum::{EnumCount, VariantArray, VariantNames};

/// One anomaly score. The names are the job's `method.scores` entries, the `--score` values and the
/// output folder names: the strum derives are their one definition (parsing, printing, listing),
/// and serde goes through them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::EnumCount,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
    strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
pub enum ScoreKind {
    Maskomaly,
    Rba,
    Eam,
    Energy,
    Msp,
    Entropy,
}

impl ScoreKind {
    /// Every score, in declaration order (the order of comparisons and reports).
    pub const ALL: [ScoreKind; ScoreKind::COUNT] = {
        let variants = <ScoreKind as VariantArray>::VARIANTS;
        let mut all = [ScoreKind::Maskomaly; ScoreKind::COUNT];
        let mut i = 0;
        while i < all.len() {
            all[i] = variants[i];
            i += 1;
        }
        all
    };

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn from_name(name: &str) -> Option<ScoreKind> {
        name.parse().ok()
    }

    /// `maskomaly, rba, eam, energy, msp, entropy`: for messages.
    pub fn valid_names() -> String {
        <ScoreKind as VariantNames>::VARIANTS.join(", ")
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

impl Serialize for ScoreKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ScoreKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = ScoreKind;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a score name ({})", ScoreKind::valid_names())
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ScoreKind, E> {
                ScoreKind::from_name(v)
                    .ok_or_else(|| E::unknown_variant(v, <ScoreKind as VariantNames>::VARIANTS))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_serde_and_the_list() {
        assert_eq!(
            ScoreKind::valid_names(),
            "maskomaly, rba, eam, energy, msp, entropy"
        );
        for k in ScoreKind::ALL {
            assert_eq!(ScoreKind::from_name(k.as_str()), Some(k));
            assert_eq!(k.to_string(), k.as_str());
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{k}\""));
            assert_eq!(serde_json::from_str::<ScoreKind>(&json).unwrap(), k);
        }
        assert_eq!(ScoreKind::from_name("Maskomaly"), None);
        assert_eq!(ScoreKind::from_name("odin"), None);
        let e = serde_json::from_str::<ScoreKind>("\"odin\"").unwrap_err();
        assert!(e.to_string().contains("unknown variant `odin`"), "{e}");
        assert!(e.to_string().contains("`entropy`"), "{e}");
    }
}
