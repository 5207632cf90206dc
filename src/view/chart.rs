//! Line-chart geometry: axes, ticks, thinning long series, SVG paths. The page's chart
//! component draws what this computes.
//!
//! Written here rather than taken from a crate: the Leptos chart crates do not yet support
//! Leptos 0.8, and plotting crates draw to a canvas without hover or a log axis we control.

use crate::report::{StepReport, ValidationReport};
use crate::volume::REGION_SHORT;

/// One line: (step, value) points in step order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    /// CSS colour.
    pub colour: String,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// Plot area in SVG units.
pub const WIDTH: f64 = 360.0;
pub const HEIGHT: f64 = 170.0;
pub const LEFT: f64 = 46.0;
pub const RIGHT: f64 = 8.0;
pub const TOP: f64 = 8.0;
pub const BOTTOM: f64 = 22.0;

/// Maps data to SVG coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub x_min: f64,
    pub x_max: f64,
    pub y_min: f64,
    pub y_max: f64,
    pub log_y: bool,
}

impl Scale {
    /// Fits every finite point (positive ones only on a log axis), plus `include` (e.g. 0 for
    /// loss charts, so that a negative value shows below the emphasised zero line).
    pub fn fit(series: &[Series], log_y: bool, include: &[f64]) -> Self {
        let usable = |y: f64| y.is_finite() && (!log_y || y > 0.0);
        let (mut x_min, mut x_max) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in series.iter().flat_map(|s| &s.points) {
            if usable(y) {
                x_min = x_min.min(x);
                x_max = x_max.max(x);
                y_min = y_min.min(y);
                y_max = y_max.max(y);
            }
        }
        for &y in include.iter().filter(|y| usable(**y)) {
            y_min = y_min.min(y);
            y_max = y_max.max(y);
        }
        if !x_min.is_finite() {
            (x_min, x_max) = (0.0, 1.0);
        }
        if x_max <= x_min {
            x_max = x_min + 1.0;
        }
        if !y_min.is_finite() {
            (y_min, y_max) = if log_y { (0.1, 1.0) } else { (0.0, 1.0) };
        }
        if log_y {
            (y_min, y_max) = (y_min.log10(), y_max.log10());
        }
        if y_max - y_min < 1e-9 {
            y_min -= 0.5;
            y_max += 0.5;
        } else {
            let pad = 0.05 * (y_max - y_min);
            y_min -= pad;
            y_max += pad;
        }
        Self {
            x_min,
            x_max,
            y_min,
            y_max,
            log_y,
        }
    }

    pub fn x(&self, x: f64) -> f64 {
        LEFT + (x - self.x_min) / (self.x_max - self.x_min) * (WIDTH - LEFT - RIGHT)
    }

    /// `None` where the value cannot be drawn (non-finite, or ≤ 0 on a log axis).
    pub fn y(&self, y: f64) -> Option<f64> {
        let y = if self.log_y {
            if y <= 0.0 {
                return None;
            }
            y.log10()
        } else {
            y
        };
        y.is_finite()
            .then(|| TOP + (self.y_max - y) / (self.y_max - self.y_min) * (HEIGHT - TOP - BOTTOM))
    }

    /// The step under SVG x coordinate `px`.
    pub fn step_at(&self, px: f64) -> f64 {
        self.x_min + (px - LEFT) / (WIDTH - LEFT - RIGHT) * (self.x_max - self.x_min)
    }

    /// Tick values on the y axis: round numbers, or powers of ten on a log axis.
    pub fn y_ticks(&self) -> Vec<f64> {
        if self.log_y {
            let (low, high) = (self.y_min.ceil() as i32, self.y_max.floor() as i32);
            let step = ((high - low) / 4).max(1);
            return (low..=high)
                .step_by(step as usize)
                .map(|e| 10f64.powi(e))
                .collect();
        }
        nice_ticks(self.y_min, self.y_max, 4)
    }

    pub fn x_ticks(&self) -> Vec<f64> {
        nice_ticks(self.x_min, self.x_max, 4)
            .into_iter()
            .filter(|x| x.fract() == 0.0)
            .collect()
    }
}

/// About `count` round tick values (1, 2 or 5 × 10ⁿ apart) inside [min, max].
pub fn nice_ticks(min: f64, max: f64, count: usize) -> Vec<f64> {
    let span = max - min;
    if !(span.is_finite() && span > 0.0) {
        return vec![min];
    }
    let raw = span / count.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (min / step).ceil() as i64;
    let last = (max / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick label: short, without float noise.
pub fn format_tick(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 {
        "0".into()
    } else if !(1e-3..1e4).contains(&magnitude) {
        format!("{value:.0e}")
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// At most `max_points` points that keep each bucket's first, minimum and maximum, so spikes
/// (a GDL that dips below zero for one step) survive thinning.
pub fn thin(points: &[(f64, f64)], max_points: usize) -> Vec<(f64, f64)> {
    if points.len() <= max_points || max_points < 3 {
        return points.to_vec();
    }
    let buckets = max_points / 3;
    let size = points.len().div_ceil(buckets);
    let mut kept = Vec::with_capacity(3 * buckets + 1);
    for bucket in points.chunks(size) {
        let finite = || bucket.iter().filter(|p| p.1.is_finite());
        let low = finite().min_by(|a, b| a.1.total_cmp(&b.1));
        let high = finite().max_by(|a, b| a.1.total_cmp(&b.1));
        let mut chosen = vec![bucket[0]];
        chosen.extend(low.copied());
        chosen.extend(high.copied());
        chosen.sort_by(|a, b| a.0.total_cmp(&b.0));
        chosen.dedup();
        kept.extend(chosen);
    }
    if let Some(last) = points.last()
        && kept.last() != Some(last)
    {
        kept.push(*last);
    }
    kept
}

/// An SVG path through the drawable points; gaps (NaN, ≤ 0 on a log axis) break the line.
pub fn path(points: &[(f64, f64)], scale: &Scale) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for &(x, y) in points {
        match scale.y(y) {
            Some(py) => {
                d.push_str(&format!(
                    "{}{:.1},{:.1}",
                    if pen_down { "L" } else { "M" },
                    scale.x(x),
                    py
                ));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d
}

/// The value of each series at the step nearest `step`, for the hover read-out.
pub fn values_at(series: &[Series], step: f64) -> Vec<(String, String, f64, f64)> {
    series
        .iter()
        .filter_map(|s| {
            let nearest = s
                .points
                .iter()
                .min_by(|a, b| (a.0 - step).abs().total_cmp(&(b.0 - step).abs()))?;
            Some((s.name.clone(), s.colour.clone(), nearest.0, nearest.1))
        })
        .collect()
}

/// The page's charts, built from the step history.
pub mod charts {
    use super::*;
    use crate::view::slice::class_colour;

    const INK: &str = "#1b1f24";
    const BLUE: &str = "#0072b2";
    const ORANGE: &str = "#d55e00";
    const GREY: &str = "#6b7280";

    fn series(
        name: &str,
        colour: &str,
        dashed: bool,
        history: &[StepReport],
        value: impl Fn(&StepReport) -> f64,
    ) -> Series {
        Series {
            name: name.into(),
            colour: colour.into(),
            dashed,
            points: history.iter().map(|r| (r.step as f64, value(r))).collect(),
        }
    }

    pub fn total(history: &[StepReport]) -> Vec<Series> {
        vec![series("total", INK, false, history, |r| r.total as f64)]
    }

    /// The warm-up term, the GDL and λ(t).
    pub fn components(history: &[StepReport]) -> Vec<Series> {
        let warmup = history
            .first()
            .map(|r| r.warmup_loss.name())
            .unwrap_or("BCE");
        vec![
            series(warmup, BLUE, false, history, |r| r.warmup as f64),
            series("GDL", ORANGE, false, history, |r| r.gdl as f64),
            series("λ", GREY, true, history, |r| r.lambda),
        ]
    }

    /// Per-channel soft Dice (`pick` = |r| &r.anatomy.dice) or GDL weight (`|r| &r.anatomy.weight`).
    pub fn per_channel(
        history: &[StepReport],
        prefix: &str,
        pick: impl Fn(&StepReport) -> &Vec<f32>,
    ) -> Vec<Series> {
        let Some(last) = history.last() else {
            return Vec::new();
        };
        last.anatomy
            .channels
            .iter()
            .enumerate()
            .map(|(index, name)| {
                // Region channels (WT, TC, ET) take the colours of classes 1–3.
                let class = name.parse::<usize>().unwrap_or(index + 1);
                let colour = if class == 0 {
                    GREY.to_string()
                } else {
                    class_colour(class)
                };
                Series {
                    name: format!("{prefix} {name}"),
                    colour,
                    dashed: false,
                    points: history
                        .iter()
                        .filter(|r| r.anatomy.channels.len() == last.anatomy.channels.len())
                        .map(|r| {
                            let value = pick(r).get(index).copied().unwrap_or(f32::NAN);
                            (r.step as f64, value as f64)
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// `series` of a per-class chart (named `"{prefix} {class}"`, a kept run's with its tag
    /// after) with each class's name for its number: "Dice necrotic core", not "Dice 1".
    pub fn with_class_names(
        mut series: Vec<Series>,
        prefix: &str,
        class_names: &[String],
    ) -> Vec<Series> {
        for line in &mut series {
            let Some(rest) = line
                .name
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix(' '))
            else {
                continue;
            };
            let (number, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let Some(name) = number
                .parse::<usize>()
                .ok()
                .and_then(|class| class_names.get(class))
            else {
                continue;
            };
            line.name = if tail.is_empty() {
                format!("{prefix} {name}")
            } else {
                format!("{prefix} {name} {tail}")
            };
        }
        series
    }

    /// The held-out cases' hard Dice per foreground class (`class_names` from the scan), at
    /// the steps they were scored.
    pub fn validation(reports: &[ValidationReport], class_names: &[String]) -> Vec<Series> {
        let classes = reports.first().map_or(0, |r| r.dice.len());
        let regions = reports.first().is_some_and(|r| r.regions);
        // Per region every entry counts (WT, TC, ET); per class the background is left out.
        (usize::from(!regions)..classes)
            .map(|class| Series {
                name: if regions {
                    REGION_SHORT
                        .get(class)
                        .map_or(String::new(), |s| s.to_string())
                } else {
                    class_names
                        .get(class)
                        .cloned()
                        .unwrap_or_else(|| format!("class {class}"))
                },
                colour: class_colour(if regions { class + 1 } else { class }),
                dashed: false,
                points: reports
                    .iter()
                    .map(|r| (r.step as f64, r.dice[class] as f64))
                    .collect(),
            })
            .collect()
    }

    pub fn gradient_norms(history: &[StepReport]) -> Vec<Series> {
        vec![
            series("before clipping", ORANGE, false, history, |r| {
                r.grad_norm as f64
            }),
            series("after clipping", BLUE, true, history, |r| {
                r.grad_norm_clipped as f64
            }),
        ]
    }
}
