//! Runs kept for comparison: a reset or a new scenario keeps the run it ends (up to
//! [`MAX_KEPT`], newest first, each with its settings and whole history), the charts overlay the
//! kept runs labelled by what differs from the current settings, and the CSV can hold them all.

use serde::{Deserialize, Serialize};

use super::chart::Series;
use super::state::PageState;
use crate::report::{StepReport, history_csv};
use crate::train::config::changed_pairs;

/// How many ended runs the page keeps.
pub const MAX_KEPT: usize = 8;

/// An ended run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptRun {
    /// Its settings as a link's hash (`schedule=switch&…`).
    pub settings: String,
    /// The scan it trained on.
    pub scan: String,
    pub history: Vec<StepReport>,
    /// Drawn on the charts.
    pub visible: bool,
}

/// Keeps `run` first, dropping the oldest beyond [`MAX_KEPT`]; a run without a step is not kept.
pub fn keep(runs: &mut Vec<KeptRun>, run: KeptRun) {
    if run.history.is_empty() {
        return;
    }
    runs.insert(0, run);
    runs.truncate(MAX_KEPT);
}

/// What `kept` set differently from `current`, as `key=value` of the kept run's values
/// (`schedule=switch, w_type=square`), or "same settings".
pub fn difference(kept: &PageState, current: &PageState) -> String {
    let pairs = [
        changed_pairs(&kept.config, &current.config),
        changed_pairs(&kept.page, &current.page),
    ];
    let text = pairs
        .iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| p.split('&'))
        .collect::<Vec<_>>()
        .join(", ");
    if text.is_empty() {
        "same settings".into()
    } else {
        text
    }
}

/// [`difference`] for a kept run's stored settings (a link's hash).
pub fn label(kept: &KeptRun, current: &PageState) -> String {
    match PageState::from_hash(&kept.settings) {
        Ok(settings) => difference(&settings, current),
        Err(_) => kept.settings.clone(),
    }
}

/// A kept run's name on the charts' legends: its number in the kept list and its label, cut to
/// a legend's width (the list beside the charts holds the whole label).
pub fn tag(index: usize, label: &str) -> String {
    const WIDTH: usize = 28;
    if label.chars().count() <= WIDTH {
        format!("{}: {label}", index + 1)
    } else {
        let cut: String = label.chars().take(WIDTH - 1).collect();
        format!("{}: {cut}…", index + 1)
    }
}

/// A kept run's lines for a chart: the same series, dashed and faded, named with its tag.
pub fn overlay(series: Vec<Series>, label: &str) -> Vec<Series> {
    series
        .into_iter()
        .map(|s| Series {
            name: format!("{} [{label}]", s.name),
            colour: format!("color-mix(in srgb, {} 45%, white)", s.colour),
            dashed: true,
            points: s.points,
        })
        .collect()
}

/// Every run's history in one CSV, a `run` column first: `current` for the run on screen, then
/// `kept 1` (the newest kept) onwards. The columns are the current run's; a kept run with
/// other classes keeps its own in its rows' order.
pub fn runs_csv(current: &[StepReport], kept: &[KeptRun]) -> String {
    let mut parts = vec![("current".to_string(), current)];
    parts.extend(
        kept.iter()
            .enumerate()
            .map(|(i, run)| (format!("kept {}", i + 1), run.history.as_slice())),
    );
    let mut csv = String::new();
    for (name, history) in parts.into_iter().filter(|(_, h)| !h.is_empty()) {
        let one = history_csv(history);
        let mut lines = one.lines();
        let header = lines.next().unwrap_or_default();
        if csv.is_empty() {
            csv.push_str(&format!("run,{header}\n"));
        }
        for line in lines {
            csv.push_str(&format!("{name},{line}\n"));
        }
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::{Schedule, WeightType};

    fn report(step: usize) -> StepReport {
        StepReport {
            step,
            ..StepReport::default()
        }
    }

    #[test]
    fn the_label_names_what_the_kept_run_set_differently() {
        let current = PageState::default();
        let mut kept = current.clone();
        kept.config.schedule = Schedule::Switch;
        kept.config.w_type = WeightType::Square;
        assert_eq!(
            difference(&kept, &current),
            "schedule=switch, w_type=square"
        );
        // The kept run's values, not the current ones.
        assert_eq!(
            difference(&current, &kept),
            "schedule=linear, w_type=simple"
        );
        kept = current.clone();
        kept.page.backend = crate::view::BackendChoice::Cpu;
        assert_eq!(difference(&kept, &current), "backend=cpu");
        assert_eq!(difference(&current, &current), "same settings");
    }

    #[test]
    fn a_long_label_is_cut_in_the_legend_tag() {
        assert_eq!(tag(0, "schedule=switch"), "1: schedule=switch");
        let long = "warmup=bce, schedule=switch, warmup_epochs=2.0";
        assert_eq!(tag(2, long), "3: warmup=bce, schedule=switch…");
    }

    #[test]
    fn the_newest_run_comes_first_and_at_most_eight_are_kept() {
        let mut runs = Vec::new();
        for n in 1..=10 {
            keep(
                &mut runs,
                KeptRun {
                    settings: format!("seed={n}"),
                    scan: "demo".into(),
                    history: vec![report(1)],
                    visible: true,
                },
            );
        }
        keep(
            &mut runs,
            KeptRun {
                settings: "seed=99".into(),
                scan: "demo".into(),
                history: Vec::new(),
                visible: true,
            },
        );
        assert_eq!(runs.len(), MAX_KEPT);
        assert_eq!(runs[0].settings, "seed=10");
        assert_eq!(runs[7].settings, "seed=3");
    }

    #[test]
    fn the_csv_holds_every_run_with_a_run_column() {
        let kept = KeptRun {
            settings: "seed=1".into(),
            scan: "demo".into(),
            history: vec![report(1), report(2)],
            visible: false,
        };
        let csv = runs_csv(&[report(1)], &[kept]);
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("run,step,"), "{}", lines[0]);
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("current,1,"));
        assert!(lines[2].starts_with("kept 1,1,") && lines[3].starts_with("kept 1,2,"));
    }
}
