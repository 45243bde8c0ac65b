//! What the simulation measured: counts per period and arm, written as CSV and drawn as an SVG
//! chart of the click-through rate.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;
use serde::Serialize;

use super::arms::ArmKind;

/// What one arm got in one period, from the recommendations it showed (organic activity is the
/// same in every arm and not counted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub sessions: u64,
    pub impressions: u64,
    /// Impressions of an item the user had seen before (shown or browsed): worn-out slots.
    pub repeats: u64,
    pub clicks: u64,
    pub carts: u64,
    pub purchases: u64,
    /// The newest model version that answered in the period (HTTP arms).
    pub model_version: Option<i64>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.sessions += other.sessions;
        self.impressions += other.impressions;
        self.repeats += other.repeats;
        self.clicks += other.clicks;
        self.carts += other.carts;
        self.purchases += other.purchases;
        self.model_version = other.model_version.or(self.model_version);
    }

    /// Clicks per item shown; 0 when nothing was shown.
    pub fn ctr(&self) -> f64 {
        ratio(self.clicks, self.impressions)
    }

    /// Purchases per item shown.
    pub fn purchase_rate(&self) -> f64 {
        ratio(self.purchases, self.impressions)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Every arm's tallies, period by period.
#[derive(Debug, Clone)]
pub struct Report {
    /// `(arm, one tally per period)`, in `ArmKind::ALL` order.
    pub arms: Vec<(ArmKind, Vec<Tally>)>,
}

/// One CSV row.
#[derive(Serialize)]
struct Row {
    period: usize,
    arm: &'static str,
    sessions: u64,
    impressions: u64,
    repeats: u64,
    clicks: u64,
    carts: u64,
    purchases: u64,
    ctr: String,
    purchase_rate: String,
    model_version: Option<i64>,
}

impl Report {
    pub fn periods(&self) -> usize {
        self.arms.first().map_or(0, |(_, t)| t.len())
    }

    /// The arm's tallies summed over its last `last` periods.
    pub fn last(&self, arm: ArmKind, last: usize) -> Tally {
        let mut total = Tally::default();
        if let Some((_, tallies)) = self.arms.iter().find(|(k, _)| *k == arm) {
            for t in &tallies[tallies.len().saturating_sub(last)..] {
                total.add(t);
            }
        }
        total
    }

    /// One row per period and arm.
    pub fn write_csv(&self, path: &Path) -> anyhow::Result<()> {
        let mut out =
            csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
        for period in 0..self.periods() {
            for (arm, tallies) in &self.arms {
                let t = &tallies[period];
                out.serialize(Row {
                    period: period + 1,
                    arm: arm.name(),
                    sessions: t.sessions,
                    impressions: t.impressions,
                    repeats: t.repeats,
                    clicks: t.clicks,
                    carts: t.carts,
                    purchases: t.purchases,
                    ctr: format!("{:.5}", t.ctr()),
                    purchase_rate: format!("{:.5}", t.purchase_rate()),
                    model_version: t.model_version,
                })?;
            }
        }
        out.flush()?;
        Ok(())
    }

    /// Click-through rate per period, one line per arm.
    pub fn write_chart(&self, path: &Path, title: &str) -> anyhow::Result<()> {
        let periods = self.periods();
        let top = self
            .arms
            .iter()
            .flat_map(|(_, t)| t.iter().map(Tally::ctr))
            .fold(0.0, f64::max)
            .max(0.01)
            * 1.1;
        let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(1usize..periods.max(2), 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("period (one simulated day)")
            .y_desc("click-through rate")
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .draw()?;
        for (arm, tallies) in &self.arms {
            let color = match arm {
                ArmKind::Recloop => RGBColor(0x1f, 0x77, 0xb4),
                ArmKind::Popularity => RGBColor(0xff, 0x7f, 0x0e),
                ArmKind::Oracle => RGBColor(0x2c, 0xa0, 0x2c),
            };
            let style = color.stroke_width(2);
            chart
                .draw_series(LineSeries::new(
                    tallies.iter().enumerate().map(|(p, t)| (p + 1, t.ctr())),
                    style,
                ))?
                .label(arm.name())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// The figures of the last `last` periods, as printed at the end of a run.
    pub fn summary(&self, last: usize) -> String {
        let mut out = format!(
            "over the last {last} of {} periods:\n{:<11} {:>11} {:>8} {:>8} {:>10} {:>14}\n",
            self.periods(),
            "arm",
            "impressions",
            "repeats",
            "CTR",
            "purchases",
            "purchase rate"
        );
        for (arm, _) in &self.arms {
            let t = self.last(*arm, last);
            out += &format!(
                "{:<11} {:>11} {:>7.0}% {:>7.2}% {:>10} {:>13.3}%\n",
                arm.name(),
                t.impressions,
                100.0 * ratio(t.repeats, t.impressions),
                t.ctr() * 100.0,
                t.purchases,
                t.purchase_rate() * 100.0
            );
        }
        let ctr = |arm| self.last(arm, last).ctr();
        let (r, p, o) = (
            ctr(ArmKind::Recloop),
            ctr(ArmKind::Popularity),
            ctr(ArmKind::Oracle),
        );
        out += &format!(
            "recloop CTR / popularity CTR = {:.2}x (target >= 2x)\nrecloop CTR / oracle CTR = {:.0}% (target >= 50%)\n",
            r / p,
            100.0 * r / o
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(impressions: u64, clicks: u64, purchases: u64) -> Tally {
        Tally {
            sessions: impressions / 10,
            impressions,
            repeats: impressions / 2,
            clicks,
            carts: purchases,
            purchases,
            model_version: Some(1),
        }
    }

    fn report() -> Report {
        Report {
            arms: vec![
                (
                    ArmKind::Recloop,
                    vec![tally(0, 0, 0), tally(100, 10, 2), tally(100, 20, 4)],
                ),
                (
                    ArmKind::Popularity,
                    vec![tally(100, 5, 1), tally(100, 5, 1), tally(100, 5, 0)],
                ),
                (
                    ArmKind::Oracle,
                    vec![tally(100, 30, 9), tally(100, 30, 9), tally(100, 40, 9)],
                ),
            ],
        }
    }

    #[test]
    fn rates_are_per_item_shown_and_sum_over_the_last_periods() {
        let r = report();
        assert_eq!(r.periods(), 3);
        assert_eq!(Tally::default().ctr(), 0.0);
        assert_eq!(r.last(ArmKind::Recloop, 2).ctr(), 0.15);
        assert_eq!(r.last(ArmKind::Recloop, 2).purchase_rate(), 0.03);
        assert_eq!(r.last(ArmKind::Popularity, 99).clicks, 15);
        let summary = r.summary(2);
        assert!(summary.contains("= 3.00x"), "{summary}");
        assert!(summary.contains("= 43%"), "{summary}");
    }

    #[test]
    fn csv_has_a_row_per_period_and_arm_and_the_chart_is_svg() {
        let dir = tempfile::tempdir().unwrap();
        let r = report();
        r.write_csv(&dir.path().join("s.csv")).unwrap();
        let text = std::fs::read_to_string(dir.path().join("s.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "period,arm,sessions,impressions,repeats,clicks,carts,purchases,ctr,purchase_rate,model_version"
        );
        assert_eq!(lines.len(), 1 + 3 * 3);
        assert_eq!(lines[4], "2,recloop,10,100,50,10,2,2,0.10000,0.02000,1");
        r.write_chart(&dir.path().join("s.svg"), "test").unwrap();
        let svg = std::fs::read_to_string(dir.path().join("s.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("popularity"),
            "{svg}"
        );
    }
}
