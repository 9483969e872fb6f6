//! Reports of an evaluation: a text table, a JSON document and a self-contained HTML page.
//!
//! This module owns turning an [`Evaluation`] into rows (metric, class, synthetic, floor,
//! baseline, the ratios synthetic/floor and synthetic/baseline, tolerance, verdict) and
//! rendering them: [`Report::to_text`] for the terminal, serde for `--json`, and [`html`] for
//! `--html`: the table plus inline SVG charts drawn with plotters — CDF overlays of every
//! continuous quantity and bar overlays of every categorical one (reference vs synthetic,
//! plus floor and baseline when present). No scripts, styles or images are fetched.
//!
//! Verdicts (on the synthetic arm): `pass` when its value is within the absolute tolerance;
//! `floor` when it is not, but is no larger than the floor (real traffic differs from itself
//! this much, so no generator can meet the tolerance on this capture); `FAIL` otherwise; `-`
//! without a synthetic arm or when the value is undefined. A ratio whose denominator is ~0
//! (below [`RATIO_EPSILON`]) is `-`: the verdict then rests on the absolute tolerance alone.
//! It does not compute metrics ([`super::compare`]).

use std::fmt::Write as _;

use plotters::prelude::*;

use super::compare::{self, Distance, MetricClass, Quantity, METRICS};
use super::evaluation::Evaluation;
use super::split::Split;
use super::traffic::{CaptureInfo, Categorical, Continuous, TrafficSummary};
use super::EvalError;
use crate::flow::FlowKind;

/// Denominators below this make a ratio meaningless (printed `-`).
pub const RATIO_EPSILON: f64 = 1e-12;

/// Outcome of one metric for the synthetic arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Above the tolerance but no worse than the floor.
    WithinFloor,
    Fail,
    /// No synthetic arm, or the metric is undefined for it.
    NotApplicable,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::WithinFloor => "floor",
            Verdict::Fail => "FAIL",
            Verdict::NotApplicable => "-",
        }
    }

    /// The verdict of `synthetic` given the floor and the tolerance.
    pub fn of(synthetic: Option<f64>, floor: Option<f64>, tolerance: f64) -> Verdict {
        match synthetic {
            None => Verdict::NotApplicable,
            Some(v) if v <= tolerance => Verdict::Pass,
            Some(v) if floor.is_some_and(|f| v <= f) => Verdict::WithinFloor,
            Some(_) => Verdict::Fail,
        }
    }
}

/// One metric across the arms.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Row {
    pub name: &'static str,
    pub class: MetricClass,
    pub distance: Distance,
    pub netshare: bool,
    pub unit: &'static str,
    pub synthetic: Option<f64>,
    pub floor: Option<f64>,
    pub baseline: Option<f64>,
    pub ratio_synthetic_floor: Option<f64>,
    pub ratio_synthetic_baseline: Option<f64>,
    pub tolerance: f64,
    pub verdict: Verdict,
}

/// Verdicts counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerdictCounts {
    pub pass: usize,
    pub within_floor: usize,
    pub fail: usize,
    pub not_applicable: usize,
}

/// The report (also the `--json` document).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    /// "pair" (`eval REAL SYNTH`) or "split" (`eval --split F CAPTURE`).
    pub mode: &'static str,
    pub seed: u64,
    pub reference: CaptureInfo,
    pub synthetic: Option<CaptureInfo>,
    pub floor: Option<CaptureInfo>,
    pub baseline: CaptureInfo,
    pub split: Option<Split>,
    pub metrics: Vec<Row>,
    pub verdicts: VerdictCounts,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.abs() >= RATIO_EPSILON => Some(a / b),
        _ => None,
    }
}

impl Report {
    pub fn new(e: &Evaluation) -> Report {
        let value = |arm: Option<&super::Arm>, i: usize| arm.and_then(|a| a.metrics[i].value);
        let mut verdicts = VerdictCounts::default();
        let metrics: Vec<Row> = e
            .baseline
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let synthetic = value(e.synthetic.as_ref(), i);
                let floor = value(e.floor.as_ref(), i);
                let baseline = m.value;
                // the tolerance comes from the reference, the same for every arm
                let verdict = Verdict::of(synthetic, floor, m.tolerance);
                match verdict {
                    Verdict::Pass => verdicts.pass += 1,
                    Verdict::WithinFloor => verdicts.within_floor += 1,
                    Verdict::Fail => verdicts.fail += 1,
                    Verdict::NotApplicable => verdicts.not_applicable += 1,
                }
                Row {
                    name: m.name,
                    class: m.class,
                    distance: m.distance,
                    netshare: m.netshare,
                    unit: m.unit,
                    synthetic,
                    floor,
                    baseline,
                    ratio_synthetic_floor: ratio(synthetic, floor),
                    ratio_synthetic_baseline: ratio(synthetic, baseline),
                    tolerance: m.tolerance,
                    verdict,
                }
            })
            .collect();
        Report {
            mode: if e.split.is_some() { "split" } else { "pair" },
            seed: e.seed,
            reference: e.reference.info(),
            synthetic: e.synthetic.as_ref().map(|a| a.summary.info()),
            floor: e.floor.as_ref().map(|a| a.summary.info()),
            baseline: e.baseline.summary.info(),
            split: e.split.clone(),
            metrics,
            verdicts,
        }
    }

    /// The terminal rendering: what was compared, the metric table, validity counts.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        if let Some(sp) = &self.split {
            let _ = writeln!(
                w,
                "split      {} at {} of its span: {} records for training, {} held out ({:.6} s from the cut)",
                sp.input.display(),
                sp.fraction,
                sp.train_records,
                sp.held_out_records,
                sp.held_out_span.duration_s()
            );
        }
        let _ = writeln!(w, "reference  {}", info_line(&self.reference));
        if let Some(i) = &self.synthetic {
            let _ = writeln!(w, "synthetic  {}", info_line(i));
        } else {
            let _ = writeln!(w, "synthetic  - (no synthetic capture in this run)");
        }
        if let Some(i) = &self.floor {
            let _ = writeln!(w, "floor      {}", info_line(i));
        }
        let _ = writeln!(w, "baseline   {} (seed {})", info_line(&self.baseline), self.seed);
        let _ = writeln!(w);
        let _ = writeln!(
            w,
            "{:<29} {:<12} {:>10} {:>10} {:>10} {:>7} {:>7} {:>10} {:<5} {}",
            "metric", "class", "synthetic", "floor", "baseline", "s/floor", "s/base", "tolerance", "unit", "verdict"
        );
        for r in &self.metrics {
            let _ = writeln!(
                w,
                "{:<29} {:<12} {:>10} {:>10} {:>10} {:>7} {:>7} {:>10} {:<5} {}",
                format!("{}{}", r.name, if r.netshare { "*" } else { "" }),
                r.class.name(),
                num(r.synthetic),
                num(r.floor),
                num(r.baseline),
                ratio_text(r.ratio_synthetic_floor),
                ratio_text(r.ratio_synthetic_baseline),
                num(Some(r.tolerance)),
                r.unit,
                r.verdict.label()
            );
        }
        let v = &self.verdicts;
        let _ = writeln!(
            w,
            "\n* NetShare's metrics (times in seconds; NetShare's CSVs use µs). verdicts: {} pass, {} within floor, {} FAIL, {} n/a",
            v.pass, v.within_floor, v.fail, v.not_applicable
        );
        for (name, i) in [("reference", Some(&self.reference)), ("synthetic", self.synthetic.as_ref()), ("floor", self.floor.as_ref())] {
            if let Some(val) = i.and_then(|i| i.validity.as_ref()) {
                let checks: Vec<String> = val.checks.iter().map(|(c, n)| format!("{c} {n}")).collect();
                let _ = writeln!(
                    w,
                    "validity   {name}: {} violations in {} packets{}",
                    val.violations_total,
                    val.packets,
                    if checks.is_empty() { String::new() } else { format!(" ({})", checks.join(", ")) }
                );
            }
        }
        s
    }
}

fn info_line(i: &CaptureInfo) -> String {
    format!(
        "{}: {} packets ({} IP, {} non-IP, {} malformed), {} flows (connected {}, unconnected {}, noflow {}), span {:.6} s",
        i.path.as_ref().map_or_else(|| i.label.clone(), |p| p.display().to_string()),
        i.packets,
        i.ip_packets,
        i.non_ip_packets,
        i.malformed,
        i.flows,
        i.flows_connected,
        i.flows_unconnected,
        i.flows_noflow,
        i.span_s
    )
}

/// A value in at most 10 characters: 4 significant digits, scientific when far from 1.
fn num(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x == 0.0 => "0".into(),
        Some(x) if x.abs() >= 1e5 || x.abs() < 1e-3 => format!("{x:.3e}"),
        Some(x) => {
            let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
            format!("{x:.digits$}")
        }
    }
}

fn ratio_text(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(x) if x.abs() >= 1000.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One series of a chart: name, colour, data.
struct Series<'a> {
    name: &'a str,
    color: RGBColor,
    summary: &'a TrafficSummary,
}

fn series(e: &Evaluation) -> Vec<Series<'_>> {
    let mut v = vec![Series { name: e.reference.label(), color: RGBColor(0, 0, 0), summary: &e.reference }];
    if let Some(a) = &e.synthetic {
        v.push(Series { name: "synthetic", color: RGBColor(214, 39, 40), summary: &a.summary });
    }
    if let Some(a) = &e.floor {
        v.push(Series { name: a.summary.label(), color: RGBColor(31, 119, 180), summary: &a.summary });
    }
    v.push(Series { name: "baseline", color: RGBColor(150, 150, 150), summary: &e.baseline.summary });
    v
}

/// The HTML page of `--html`: the report's tables and every chart, self-contained.
pub fn html(e: &Evaluation, r: &Report) -> Result<String, EvalError> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>trafgen eval</title>\n<style>\
         body{{font-family:sans-serif;margin:1.5em;max-width:1100px}} table{{border-collapse:collapse;font-size:13px}}\
         td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}} td:first-child,th:first-child{{text-align:left}}\
         .pass{{background:#d9f2d9}} .floor{{background:#fff3cd}} .FAIL{{background:#f8d7da}}\
         figure{{display:inline-block;margin:6px}} pre{{font-size:12px}}</style></head><body>\n\
         <h1>trafgen eval</h1>\n<pre>"
    );
    for (name, i) in [
        ("reference", Some(&r.reference)),
        ("synthetic", r.synthetic.as_ref()),
        ("floor", r.floor.as_ref()),
        ("baseline", Some(&r.baseline)),
    ] {
        if let Some(i) = i {
            let _ = writeln!(h, "{name:<10} {}", esc(&info_line(i)));
        }
    }
    let _ = writeln!(h, "</pre>\n<h2>Metrics</h2>\n<table><tr><th>metric</th><th>class</th><th>synthetic</th><th>floor</th><th>baseline</th><th>synthetic / floor</th><th>synthetic / baseline</th><th>tolerance</th><th>unit</th><th>verdict</th></tr>");
    for row in &r.metrics {
        let v = row.verdict.label();
        let _ = writeln!(
            h,
            "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{v}\">{v}</td></tr>",
            row.name,
            if row.netshare { " *" } else { "" },
            row.class.name(),
            num(row.synthetic),
            num(row.floor),
            num(row.baseline),
            ratio_text(row.ratio_synthetic_floor),
            ratio_text(row.ratio_synthetic_baseline),
            num(Some(row.tolerance)),
            row.unit,
        );
    }
    let _ = writeln!(
        h,
        "</table>\n<p>* NetShare's metrics. JSD in nats (≤ ln 2), EMD in the quantity's unit (times in seconds), KS in [0, 1]; \
         tolerances: JSD {}, EMD {} % of the reference mean, KS {}, autocorrelation difference {}.</p>",
        compare::JSD_TOLERANCE,
        compare::EMD_TOLERANCE_OF_MEAN * 100.0,
        compare::KS_TOLERANCE,
        compare::ACF_TOLERANCE
    );
    let s = series(e);
    let _ = writeln!(h, "<h2>Continuous quantities (CDFs)</h2>");
    for (q, title, log) in continuous_charts() {
        let svg = cdf_svg(title, &s, q, log)?;
        let _ = writeln!(h, "<figure>{svg}</figure>");
    }
    let _ = writeln!(h, "<h2>Categorical quantities (share of packets or flows)</h2>");
    for (c, title) in categorical_charts() {
        let cats: Vec<(String, Vec<f64>)> = categorical_bars(&s, c, 14);
        let svg = bars_svg(title, &s, &cats, "share")?;
        let _ = writeln!(h, "<figure>{svg}</figure>");
    }
    let acf: Vec<(String, Vec<f64>)> = compare::RATE_BINS_MS
        .iter()
        .map(|&ms| (format!("{ms} ms"), s.iter().map(|x| compare::rate_acf(x.summary, ms).unwrap_or(0.0)).collect()))
        .collect();
    let svg = bars_svg("lag-1 autocorrelation of the packet-count series, by bin width", &s, &acf, "r1")?;
    let _ = writeln!(h, "<figure>{svg}</figure>\n</body></html>");
    Ok(h)
}

/// The continuous quantities charted, with titles and whether the x axis is logarithmic.
fn continuous_charts() -> Vec<(Continuous, &'static str, bool)> {
    let mut v = vec![
        (Continuous::PacketLength, "packet length (IP total length, B)", false),
        (Continuous::Timestamp, "timestamp (s since the first packet)", false),
        (Continuous::FlowSize, "flow size (packets per 5-tuple)", true),
        (Continuous::WithinFlowIat, "within-flow inter-arrival (s)", true),
        (Continuous::FlowStartIat, "flow-start inter-arrival (s)", true),
        (Continuous::FlowDuration, "flow duration (s)", true),
        (Continuous::FlowBytes, "bytes per flow", true),
    ];
    for (k, t) in [
        (FlowKind::Connected, "packets per connected flow"),
        (FlowKind::Unconnected, "packets per unconnected flow"),
        (FlowKind::NoFlow, "packets per noflow group"),
    ] {
        v.push((Continuous::FlowPackets(k), t, true));
    }
    // every continuous quantity of a metric has a chart
    debug_assert!(METRICS.iter().all(|d| match d.quantity {
        Quantity::Continuous(q) => v.iter().any(|c| c.0 == q),
        _ => true,
    }));
    v
}

fn categorical_charts() -> [(Categorical, &'static str); 8] {
    [
        (Categorical::SrcIpRank, "source IP popularity (packets by rank)"),
        (Categorical::DstIpRank, "destination IP popularity (packets by rank)"),
        (Categorical::SrcPort, "source port (top by reference)"),
        (Categorical::DstPort, "destination port (top by reference)"),
        (Categorical::IpProto, "IP protocol"),
        (Categorical::TcpFlags, "TCP flag combinations"),
        (Categorical::FlowKind, "flow kind"),
        (Categorical::App, "application"),
    ]
}

/// The `top` categories with the most reference mass (ranks: the first `top`), as shares.
fn categorical_bars(s: &[Series<'_>], c: Categorical, top: usize) -> Vec<(String, Vec<f64>)> {
    let hists: Vec<_> = s.iter().map(|x| x.summary.categorical(c)).collect();
    let totals: Vec<f64> = hists.iter().map(|h| h.values().sum::<u64>().max(1) as f64).collect();
    let mut labels: Vec<&String> = hists[0].keys().collect();
    if !matches!(c, Categorical::SrcIpRank | Categorical::DstIpRank) {
        labels.sort_by(|a, b| hists[0][*b].cmp(&hists[0][*a]).then(a.cmp(b)));
    }
    labels
        .into_iter()
        .take(top)
        .map(|l| {
            let shares = hists.iter().zip(&totals).map(|(h, t)| h.get(l).copied().unwrap_or(0) as f64 / t).collect();
            (l.trim_start_matches('0').to_string(), shares)
        })
        .collect()
}

fn plot_err(what: &str) -> impl Fn(String) -> EvalError + '_ {
    move |msg| EvalError::Plot { what: what.to_string(), msg }
}

const SIZE: (u32, u32) = (520, 320);

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;
type PlotResult<T> = Result<T, DrawingAreaErrorKind<std::io::Error>>;

/// A captioned chart with the house margins over `x` × `y`.
fn chart_on<'a, 'b>(root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>, title: &str, x: std::ops::Range<f64>, y: std::ops::Range<f64>) -> PlotResult<Chart<'a, 'b>> {
    ChartBuilder::on(root).caption(title, ("sans-serif", 15)).margin(8).x_label_area_size(30).y_label_area_size(40).build_cartesian_2d(x, y)
}

/// The legend box of a chart, at `pos`.
fn draw_legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, pos: SeriesLabelPosition) -> PlotResult<()> {
    chart.configure_series_labels().position(pos).background_style(WHITE.mix(0.8)).border_style(BLACK.mix(0.3)).draw()
}

/// CDF overlay of quantity `q` for every series; `log`: x in log10 (values below the
/// smallest positive one drawn at it).
fn cdf_svg(title: &str, s: &[Series<'_>], q: Continuous, log: bool) -> Result<String, EvalError> {
    const POINTS: usize = 300;
    let pe = plot_err(title);
    let mut samples: Vec<Vec<f64>> = s.iter().map(|x| x.summary.continuous(q)).collect();
    for v in &mut samples {
        v.sort_unstable_by(f64::total_cmp);
    }
    let min_pos = samples.iter().flatten().copied().filter(|&x| x > 0.0).fold(f64::INFINITY, f64::min);
    let tx = |x: f64| if log { x.max(min_pos).log10() } else { x };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in samples.iter().flatten() {
        lo = lo.min(tx(x));
        hi = hi.max(tx(x));
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| pe(e.to_string()))?;
        let mut chart = chart_on(&root, title, lo..hi, 0f64..1.0).map_err(|e| pe(e.to_string()))?;
        let fmt_x = |v: &f64| if log { format!("{:.0e}", 10f64.powf(*v)) } else { num(Some(*v)) };
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&fmt_x)
            .y_desc("CDF")
            .draw()
            .map_err(|e| pe(e.to_string()))?;
        for (x, v) in s.iter().zip(&samples) {
            if v.is_empty() {
                continue;
            }
            let n = v.len();
            let pts: Vec<(f64, f64)> = std::iter::once((tx(v[0]), 0.0))
                .chain((0..=POINTS.min(n - 1)).map(|k| {
                    let i = if n == 1 { 0 } else { k * (n - 1) / POINTS.min(n - 1) };
                    (tx(v[i]), (i + 1) as f64 / n as f64)
                }))
                .collect();
            let color = x.color;
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| pe(e.to_string()))?
                .label(format!("{} (n={n})", x.name))
                .legend(move |(a, b)| PathElement::new(vec![(a, b), (a + 16, b)], color.stroke_width(2)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(|e| pe(e.to_string()))?;
        root.present().map_err(|e| pe(e.to_string()))?;
    }
    Ok(svg)
}

/// Grouped bars: one group per category, one bar per series.
fn bars_svg(title: &str, s: &[Series<'_>], cats: &[(String, Vec<f64>)], y_desc: &str) -> Result<String, EvalError> {
    let pe = plot_err(title);
    let n = cats.len().max(1);
    let (mut ymin, mut ymax) = (0f64, 0f64);
    for v in cats.iter().flat_map(|c| c.1.iter()) {
        ymin = ymin.min(*v);
        ymax = ymax.max(*v);
    }
    if ymax - ymin < 1e-9 {
        ymax = ymin + 1.0;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| pe(e.to_string()))?;
        // headroom above the bars for the legend
        let mut chart = chart_on(&root, title, -0.5f64..(n as f64 - 0.5), ymin..ymax * 1.4).map_err(|e| pe(e.to_string()))?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                cats.get(i as usize).map_or(String::new(), |c| c.0.clone())
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_label_formatter(&label)
            .y_desc(y_desc)
            .draw()
            .map_err(|e| pe(e.to_string()))?;
        let width = 0.8 / s.len() as f64;
        for (j, x) in s.iter().enumerate() {
            let color = x.color;
            let bars = cats.iter().enumerate().map(|(i, c)| {
                let left = i as f64 - 0.4 + j as f64 * width;
                Rectangle::new([(left, 0.0), (left + width, c.1[j])], color.filled())
            });
            chart
                .draw_series(bars)
                .map_err(|e| pe(e.to_string()))?
                .label(x.name)
                .legend(move |(a, b)| Rectangle::new([(a, b - 5), (a + 10, b + 5)], color.filled()));
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(|e| pe(e.to_string()))?;
        root.present().map_err(|e| pe(e.to_string()))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(Verdict::of(Some(0.005), None, 0.01), Verdict::Pass);
        assert_eq!(Verdict::of(Some(0.01), Some(0.0), 0.01), Verdict::Pass);
        assert_eq!(Verdict::of(Some(0.02), Some(0.03), 0.01), Verdict::WithinFloor);
        assert_eq!(Verdict::of(Some(0.02), Some(0.01), 0.01), Verdict::Fail);
        assert_eq!(Verdict::of(Some(0.02), None, 0.01), Verdict::Fail);
        assert_eq!(Verdict::of(None, Some(0.01), 0.01), Verdict::NotApplicable);
    }

    #[test]
    fn ratios_with_a_zero_denominator_are_absent() {
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(Some(1.0), Some(1e-13)), None);
        assert_eq!(ratio(Some(1.0), Some(4.0)), Some(0.25));
        assert_eq!(ratio(None, Some(4.0)), None);
        assert_eq!(ratio_text(None), "-");
    }

    #[test]
    fn numbers_fit_their_column() {
        assert_eq!(num(Some(0.0)), "0");
        assert_eq!(num(Some(0.6931)), "0.6931");
        assert_eq!(num(Some(12.345678)), "12.35");
        assert_eq!(num(Some(1234.5)), "1234");
        assert_eq!(num(Some(2.5e-5)), "2.500e-5");
        assert_eq!(num(Some(3.0e7)), "3.000e7");
        assert_eq!(num(None), "-");
        for x in [1e-3, 0.012345, 99999.0, 1e300, -0.5] {
            assert!(num(Some(x)).len() <= 10, "{x}: {}", num(Some(x)));
        }
    }
}
