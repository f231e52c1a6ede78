//! PNG plots for `sensorflow evaluate --plot DIR`: per NAB file, the series, the detector's
//! anomaly score and the labelled anomaly windows; and a summary chart of the optimization
//! report. Drawn with plotters' bitmap backend and a font compiled into the binary, so no
//! system fonts or fontconfig are needed.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use sensorflow_models::detector::evaluate::ReportRow;
use sensorflow_models::nab::FileOutput;

use crate::Error;

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (1400, 640);

fn register_font() -> Result<(), Error> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
            .map_err(|_| Error::Runtime("the built-in plot font does not load".into()));
    });
    result
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Runtime(format!("plotting {}: {e}", path.display()))
}

/// The PNG path for NAB file `category/name.csv` under `dir`.
pub fn file_plot_path(dir: &Path, file: &str) -> PathBuf {
    dir.join(format!("{}.png", file.trim_end_matches(".csv").replace('/', "__")))
}

/// Draws one file: the values on top, the score below (with `threshold` as a line), the
/// labelled windows shaded in both. Returns the PNG's path.
pub fn plot_file(
    dir: &Path,
    output: &FileOutput,
    windows: &[(u64, u64)],
    threshold: Option<f64>,
) -> Result<PathBuf, Error> {
    register_font()?;
    let path = file_plot_path(dir, &output.file);
    draw_file(&path, output, windows, threshold)?;
    Ok(path)
}

fn draw_file(
    path: &Path,
    output: &FileOutput,
    windows: &[(u64, u64)],
    threshold: Option<f64>,
) -> Result<(), Error> {
    let n = output.values.len();
    if n < 2 {
        return Err(Error::Runtime(format!("{}: too few rows to plot ({n})", output.file)));
    }
    let (t0, t1) = (
        output.timestamps.iter().copied().min().unwrap_or(0),
        output.timestamps.iter().copied().max().unwrap_or(1).max(1),
    );
    let (lo, hi) = output
        .values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (lo.min(0.0), lo.max(0.0) + 1.0) };
    let pad = (hi - lo) * 0.05;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let (top, bottom) = root.split_vertically(SIZE.1 * 62 / 100);
    let hours = |t: u64| (t.saturating_sub(t0)) as f64 / 3.6e6;
    let span = hours(t1).max(1e-6);
    let windows: Vec<(f64, f64)> = windows.iter().map(|&(a, b)| (hours(a), hours(b))).collect();

    let y = (lo - pad)..(hi + pad);
    let axes = (Some("hours since the first row"), "value");
    let mut values = file_panel(&top, path, Some(&output.file), (span, y), axes, &windows)?;
    values
        .draw_series(LineSeries::new(
            output
                .timestamps
                .iter()
                .zip(&output.values)
                .filter(|(_, v)| v.is_finite())
                .map(|(&t, &v)| (hours(t), v)),
            RGBColor(30, 100, 200).stroke_width(1),
        ))
        .map_err(|e| draw_err(path, e))?;

    let mut scores = file_panel(&bottom, path, None, (span, 0.0..1.05), (None, "anomaly score"), &windows)?;
    scores
        .draw_series(LineSeries::new(
            output.timestamps.iter().zip(&output.scores).map(|(&t, &s)| (hours(t), s.clamp(0.0, 1.0))),
            RGBColor(200, 40, 40).stroke_width(1),
        ))
        .map_err(|e| draw_err(path, e))?
        .label("score")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RGBColor(200, 40, 40)));
    if let Some(th) = threshold {
        scores
            .draw_series(LineSeries::new(vec![(0.0, th), (span, th)], BLACK.mix(0.6).stroke_width(1)))
            .map_err(|e| draw_err(path, e))?
            .label(format!("threshold {th:.3}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.6)));
    }
    scores
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| draw_err(path, e))?;
    root.present().map_err(|e| draw_err(path, e))?;
    Ok(())
}

/// A panel of a file plot: hours on x.
type FilePanel<'a, 'p> = ChartContext<'a, BitMapBackend<'p>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A file plot's panel over hours `0..span` and `y`, with the grid (the x axis described
/// where `x_desc` is given) and the labelled `windows` (in hours) shaded over its full height.
fn file_panel<'a, 'p>(
    area: &'a DrawingArea<BitMapBackend<'p>, Shift>,
    path: &Path,
    caption: Option<&str>,
    (span, y): (f64, Range<f64>),
    (x_desc, y_desc): (Option<&str>, &str),
    windows: &[(f64, f64)],
) -> Result<FilePanel<'a, 'p>, Error> {
    let mut builder = ChartBuilder::on(area);
    if let Some(caption) = caption {
        builder.caption(caption, (FONT, 22));
    }
    let mut chart = builder
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..span, y.clone())
        .map_err(|e| draw_err(path, e))?;
    let mut mesh = chart.configure_mesh();
    if let Some(x_desc) = x_desc {
        mesh.x_desc(x_desc);
    }
    mesh.y_desc(y_desc)
        .label_style((FONT, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| draw_err(path, e))?;
    let shade = RGBColor(255, 120, 90).mix(0.18);
    for &(a, b) in windows {
        chart
            .draw_series(std::iter::once(Rectangle::new([(a, y.start), (b, y.end)], shade.filled())))
            .map_err(|e| draw_err(path, e))?;
    }
    Ok(chart)
}

/// One quantity of a report row.
type Metric = fn(&ReportRow) -> f64;

/// Draws the optimization report: NAB standard score, throughput and file size per step.
pub fn plot_report(path: &Path, rows: &[ReportRow]) -> Result<(), Error> {
    register_font()?;
    if rows.is_empty() {
        return Err(Error::Runtime("the optimization report has no rows to plot".into()));
    }
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    let root = root.titled("sensorflow optimization report", (FONT, 24)).map_err(|e| draw_err(path, e))?;
    let panels = root.split_evenly((1, 3));
    let steps: Vec<String> = rows.iter().map(|r| r.step.clone()).collect();
    let metrics: [(&str, Metric); 3] = [
        ("NAB standard score", |r| r.nab_standard.unwrap_or(0.0)),
        ("windows/s (millions, batch 1024)", |r| r.windows_per_sec / 1e6),
        ("weights file (KiB)", |r| r.bytes as f64 / 1024.0),
    ];
    let colors = [RGBColor(30, 100, 200), RGBColor(40, 150, 90), RGBColor(200, 110, 30)];
    for ((panel, (title, metric)), color) in panels.iter().zip(metrics.iter()).zip(colors) {
        let values: Vec<f64> = rows.iter().map(metric).collect();
        let lo = values.iter().copied().fold(0.0f64, f64::min);
        let hi = values.iter().copied().fold(0.0f64, f64::max).max(1e-9) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(*title, (FONT, 18))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0..rows.len()).into_segmented(), lo.min(0.0)..hi)
            .map_err(|e| draw_err(path, e))?;
        let names = steps.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&move |x| match x {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .label_style((FONT, 14))
            .draw()
            .map_err(|e| draw_err(path, e))?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| {
                let mut bar = Rectangle::new(
                    [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), v)],
                    color.filled(),
                );
                bar.set_margin(0, 0, 12, 12);
                bar
            }))
            .map_err(|e| draw_err(path, e))?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, &v)| {
                Text::new(format!("{v:.2}"), (SegmentValue::CenterOf(i), v), (FONT, 14).into_font())
            }))
            .map_err(|e| draw_err(path, e))?;
    }
    root.present().map_err(|e| draw_err(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a PNG's width, height and the share of pixels that are not white.
    fn ink(path: &Path) -> (u32, u32, f64) {
        let img = image::open(path).expect("a readable PNG").to_rgb8();
        let (w, h) = img.dimensions();
        let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        (w, h, inked as f64 / (w * h) as f64)
    }

    #[test]
    fn a_file_plot_shades_windows_and_draws_both_panels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = 500u64;
        let out = FileOutput {
            file: "realKnownCause/test_series.csv".into(),
            timestamps: (0..n).map(|i| 1_400_000_000_000 + i * 300_000).collect(),
            values: (0..n)
                .map(|i| (i as f64 / 20.0).sin() * 10.0 + if i == 300 { 80.0 } else { 0.0 })
                .collect(),
            scores: (0..n).map(|i| if (295..310).contains(&i) { 0.9 } else { 0.05 }).collect(),
        };
        let windows = [(out.timestamps[280], out.timestamps[320])];
        let path = plot_file(dir.path(), &out, &windows, Some(0.5)).expect("plots");
        assert_eq!(path, dir.path().join("realKnownCause__test_series.png"));
        let (w, h, share) = ink(&path);
        assert_eq!((w, h), SIZE);
        assert!(share > 0.02 && share < 0.6, "ink share {share}");
        // The shaded window: a pixel in the middle of the value panel inside the window
        // is tinted (not white), one far outside it in an empty area is white.
        let img = image::open(&path).expect("png").to_rgb8();
        let too_short =
            FileOutput { timestamps: vec![1], values: vec![1.0], scores: vec![0.0], ..out.clone() };
        assert!(plot_file(dir.path(), &too_short, &[], None).is_err());
        assert!(
            img.pixels().any(|p| i32::from(p.0[0]) > i32::from(p.0[2]) + 20),
            "no shaded (reddish) window pixels"
        );
    }

    #[test]
    fn the_report_chart_has_a_bar_per_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        let row = |step: &str, nab: f64, bytes: u64| ReportRow {
            step: step.into(),
            nab_standard: Some(nab),
            windows_per_sec: 1e6,
            bytes,
            ..ReportRow::default()
        };
        let rows =
            vec![row("teacher", 40.0, 400_000), row("student", 35.0, 40_000), row("int8", 33.0, 12_000)];
        let path = dir.path().join("report.png");
        plot_report(&path, &rows).expect("plots");
        let (w, h, share) = ink(&path);
        assert_eq!((w, h), SIZE);
        assert!(share > 0.02, "ink share {share}");
        assert!(plot_report(&path, &[]).is_err());
    }
}
