//! The short table `maskomaly run` prints on stderr when it ends (`--json` gives scripts the same
//! numbers on stdout).

use super::{RunSummary, STAGES};
use std::fmt::Write as _;
use std::path::Path;

impl RunSummary {
    /// Written / skipped / failed, images per second, where the outputs are, and the stage that
    /// took the most time per image.
    pub fn table(&self, output_root: &Path) -> String {
        let c = &self.counts;
        let done = c.written + c.failed;
        let mut s = format!("run summary ({} items)\n", c.total);
        let mut row = |k: &str, v: String| {
            let _ = writeln!(s, "  {k:<10} {v}");
        };
        row("written", c.written.to_string());
        row(
            "skipped",
            format!("{} (complete from an earlier run)", c.skipped),
        );
        row(
            "failed",
            if c.failed > 0 {
                format!("{} (listed in the manifest with their errors)", c.failed)
            } else {
                "0".into()
            },
        );
        row(
            "speed",
            format!(
                "{:.2} images/s ({done} in {:.1} s)",
                done as f64 / self.seconds.max(1e-9),
                self.seconds
            ),
        );
        row("outputs", output_root.display().to_string());
        row("manifest", self.manifest.display().to_string());
        let busy: f64 = self.stage_busy_s.iter().sum();
        let slowest = STAGES
            .iter()
            .zip(self.stage_busy_s)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match slowest {
            Some((name, b)) if done > 0 && busy > 0.0 => row(
                "slowest",
                format!(
                    "{name}: {:.1} ms per image, {:.0}% of the stages' time",
                    b * 1e3 / done as f64,
                    100.0 * b / busy
                ),
            ),
            _ => row("slowest", "– (nothing processed)".into()),
        }
        if let Some(sig) = self.signal {
            row("stopped", format!("by signal {sig}; rerun to resume"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provenance::manifest::Counts;

    #[test]
    fn table_names_counts_rate_outputs_and_slowest_stage() {
        let s = RunSummary {
            counts: Counts {
                total: 5,
                written: 3,
                failed: 1,
                skipped: 1,
            },
            stage_busy_s: [0.4, 0.0, 2.0, 0.8, 0.0, 0.8],
            queue_mean: [0.0; 4],
            signal: None,
            manifest: "out/manifest.json".into(),
            seconds: 2.0,
        };
        let t = s.table(Path::new("out"));
        let line = |k: &str| {
            t.lines()
                .find(|l| l.trim_start().starts_with(k))
                .unwrap_or_else(|| panic!("no {k} line in\n{t}"))
                .to_string()
        };
        assert!(line("written").ends_with(" 3"));
        assert!(line("skipped").contains(" 1 "));
        assert!(line("failed").contains(" 1 "));
        // 4 processed items in 2 s.
        assert!(line("speed").contains("2.00 images/s"), "{t}");
        assert!(line("outputs").ends_with("out"));
        // forward: 2.0 s over 4 items = 500 ms, 2.0 / 4.0 of the busy time.
        assert!(
            line("slowest").contains("forward: 500.0 ms per image, 50%"),
            "{t}"
        );
        assert!(!t.contains("stopped"));
    }
}
