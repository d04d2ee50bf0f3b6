//! SVG plots of a run (the plotters crate): the latency percentile distribution (latency
//! against percentile on a "number of nines" axis, as HdrHistogram plots show it) and
//! throughput over time.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::latency::Percentiles;

/// Latency against percentile for each named distribution, in milliseconds.
pub fn latency_distribution(
    path: &Path,
    title: &str,
    series: &[(&str, &Percentiles)],
) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    // x: percentile as nines (50% = 0.3, 99% = 2, 99.9% = 3, 99.99% = 4).
    let points = |p: &Percentiles| -> Vec<(f64, f64)> {
        [
            (50.0, p.p50),
            (75.0, p.p75),
            (95.0, p.p95),
            (99.0, p.p99),
            (99.9, p.p999),
            (99.99, p.p9999),
        ]
        .iter()
        .map(|&(q, us)| (-(1.0 - q / 100.0f64).log10(), us as f64 / 1000.0))
        .collect()
    };
    let max = series
        .iter()
        .map(|(_, p)| p.p9999 as f64 / 1000.0)
        .fold(0.001, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..4.2f64, 0.0..max * 1.1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| format!("{:.4}%", 100.0 * (1.0 - 10f64.powf(-x))))
        .draw()
        .map_err(|e| e.to_string())?;
    let lines = series.iter().map(|(name, p)| (*name, points(p)));
    draw_lines(&mut chart, lines)?;
    root.present().map_err(|e| e.to_string())
}

/// Messages per second over the run, for each named series.
pub fn throughput(path: &Path, title: &str, series: &[(&str, &[u64])]) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let seconds = series
        .iter()
        .map(|(_, s)| s.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let top = series
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..seconds as f64, 0f64..top * 1.1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("messages/s")
        .draw()
        .map_err(|e| e.to_string())?;
    let lines = series.iter().map(|(name, counts)| {
        let points = counts
            .iter()
            .enumerate()
            .map(|(t, c)| (t as f64 + 1.0, *c as f64))
            .collect();
        (*name, points)
    });
    draw_lines(&mut chart, lines)?;
    root.present().map_err(|e| e.to_string())
}

/// Draws each named line in its own colour, with a legend.
fn draw_lines<'a, 'b>(
    chart: &mut ChartContext<'b, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    lines: impl Iterator<Item = (&'a str, Vec<(f64, f64)>)>,
) -> Result<(), String> {
    for (i, (name, points)) in lines.enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg_with_the_series() {
        let dir = std::env::temp_dir().join(format!("runnel-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = Percentiles {
            count: 10,
            p50: 100,
            p75: 150,
            p95: 300,
            p99: 900,
            p999: 2000,
            p9999: 4000,
            max: 5000,
        };
        let latency = dir.join("latency.svg");
        latency_distribution(&latency, "test run", &[("end to end", &p), ("publish", &p)]).unwrap();
        let svg = std::fs::read_to_string(&latency).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("end to end") && svg.contains("polyline"),
            "{svg}"
        );
        let rates = dir.join("rates.svg");
        throughput(
            &rates,
            "rates",
            &[("published", &[1, 2, 3][..]), ("consumed", &[1, 2, 2][..])],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&rates).unwrap();
        assert!(svg.contains("consumed"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
