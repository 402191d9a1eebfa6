//! The stress report: one self-contained HTML file (inline CSS, inline SVG drawn here by hand, no
//! script, no external font or stylesheet, so a CI artifact opens anywhere offline) and the figures as
//! JSON for machines. No plotting crate: the few chart shapes needed (lines, bars, vertical markers,
//! axes with round ticks, legends) are a page of string formatting.
//!
//! Plots per run: connected clients over time with each storm marked (a line at its start and a band
//! until all its clients were back), the histogram of times to reconnect with p50/p99 marked, and
//! connection attempts per second over time. With two or more runs (the same storm with `--jitter
//! none` and `--jitter full`), one more plot lays their attempts-per-second curves over each other with
//! each peak labelled, and the figures are tabled side by side.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::metrics::{Figures, RunFigures, Series, fmt_duration, fmt_offset};

/// File name of the HTML report inside the report directory.
pub const REPORT_FILE: &str = "report.html";
/// File name of the JSON figures inside the report directory: an array of `{label, figures}`.
pub const FIGURES_FILE: &str = "figures.json";

/// File name of the outcomes inside the report directory (what `--json` writes): the input of
/// `stress merge`.
pub const OUTCOME_FILE: &str = "outcome.json";

/// Most points one line is drawn with; longer series are reduced to the minimum and maximum of each
/// group of samples, so spikes (the thundering herd) and dips stay visible.
pub const MAX_LINE_POINTS: usize = 2400;

/// Bars in the reconnect-time histogram.
pub const HISTOGRAM_BARS: usize = 40;

const PALETTE: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"];
const STORM: &str = "#d62728";
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 340.0;

#[derive(Serialize)]
struct LabelledFigures<'a> {
    label: &'a str,
    figures: &'a Figures,
}

/// Writes [`REPORT_FILE`] and [`FIGURES_FILE`] into `dir` (created if missing) and returns the
/// report's path.
pub fn write_report(dir: &Path, runs: &[RunFigures]) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let json: Vec<_> = runs
        .iter()
        .map(|r| LabelledFigures {
            label: &r.label,
            figures: &r.figures,
        })
        .collect();
    let json = serde_json::to_string_pretty(&json).map_err(io::Error::other)?;
    let figures_path = dir.join(FIGURES_FILE);
    std::fs::write(&figures_path, json + "\n")
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", figures_path.display())))?;
    let path = dir.join(REPORT_FILE);
    std::fs::write(&path, render_html(runs))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// The HTML report as a string (what [`write_report`] writes).
pub fn render_html(runs: &[RunFigures]) -> String {
    let mut h = String::new();
    h.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>jt808-harness stress report</title>\n<style>\n\
         body { font-family: sans-serif; margin: 24px auto; max-width: 1000px; color: #222; }\n\
         h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 36px; border-bottom: 1px solid #ccc; }\n\
         table { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }\n\
         th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; white-space: nowrap; }\n\
         td.v { font-family: monospace; white-space: normal; }\n\
         svg { display: block; margin: 10px 0; background: #fff; }\n\
         p.note { font-size: 13px; color: #555; }\n\
         </style>\n</head>\n<body>\n<h1>jt808-harness stress report</h1>\n",
    );
    if runs.is_empty() {
        h.push_str("<p>No runs.</p>\n");
    }
    if runs.len() >= 2 {
        h.push_str("<h2>Comparison</h2>\n");
        h.push_str(&attempts_comparison_svg(runs));
        h.push_str(&figures_table(runs));
    }
    for run in runs {
        let _ = writeln!(h, "<h2>Run: {}</h2>", esc(&run.label));
        if runs.len() == 1 {
            h.push_str(&figures_table(std::slice::from_ref(run)));
        }
        h.push_str(&connected_svg(run));
        h.push_str(&reconnect_histogram_svg(run));
        h.push_str(&attempts_svg(run));
    }
    h.push_str(
        "<p class=\"note\">Times are offsets from the start of each run. Attempts are counted in aligned \
         100 ms buckets and drawn as a rate per second. Reconnect time runs from the storm (or the \
         client's own disconnect) to its next successful connection.</p>\n</body>\n</html>\n",
    );
    h
}

/// The figures as an HTML table, one value column per run, rows in the first run's order.
fn figures_table(runs: &[RunFigures]) -> String {
    let per_run: Vec<Vec<(String, String)>> = runs.iter().map(|r| r.figures.rows()).collect();
    let mut keys: Vec<String> = Vec::new();
    for rows in &per_run {
        for (k, _) in rows {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let mut t = String::from("<table>\n<tr><th>figure</th>");
    for r in runs {
        let _ = write!(t, "<th>{}</th>", esc(&r.label));
    }
    t.push_str("</tr>\n");
    for k in &keys {
        let _ = write!(t, "<tr><td>{}</td>", esc(k));
        for rows in &per_run {
            let v = rows.iter().find(|(rk, _)| rk == k).map_or("", |(_, v)| v.as_str());
            let _ = write!(t, "<td class=\"v\">{}</td>", esc(v));
        }
        t.push_str("</tr>\n");
    }
    t.push_str("</table>\n");
    t
}

fn seconds(series: &Series) -> impl Fn(usize) -> f64 + '_ {
    move |i| (series.bucket * i as u32).as_secs_f64()
}

fn connected_svg(run: &RunFigures) -> String {
    let s = &run.series;
    let f = &run.figures;
    let end = f.duration.as_secs_f64();
    let ymax = s.connected.iter().copied().max().unwrap_or(0).max(f.clients as u32) as f64;
    let mut p = Plot::new(
        &format!("Connected clients over time: {}", run.label),
        Axis::new(0.0, end, "time since start (s)"),
        Axis::new(0.0, ymax, "connected clients"),
    );
    storm_marks(&mut p, f, true);
    let t = seconds(s);
    let pts: Vec<(f64, f64)> = s.connected.iter().enumerate().map(|(i, &v)| (t(i), v as f64)).collect();
    p.line(&pts, PALETTE[0], 1.6);
    let mut legend = vec![Legend::line(PALETTE[0], "connected")];
    if !f.storms.is_empty() {
        legend.push(Legend::band(STORM, "storm: start, until all back"));
    }
    p.finish(&legend)
}

fn attempts_svg(run: &RunFigures) -> String {
    let s = &run.series;
    let f = &run.figures;
    let rate = per_second(s);
    let ymax = rate.iter().map(|p| p.1).fold(0.0, f64::max);
    let mut p = Plot::new(
        &format!("Connection attempts per second: {}", run.label),
        Axis::new(
            0.0,
            f.duration.as_secs_f64().max(rate.last().map_or(0.0, |p| p.0)),
            "time since start (s)",
        ),
        Axis::new(0.0, ymax, "attempts / s (100 ms buckets)"),
    );
    storm_marks(&mut p, f, false);
    p.line(&rate, PALETTE[0], 1.2);
    label_peak(&mut p, &rate, PALETTE[0]);
    let mut legend = vec![Legend::line(PALETTE[0], "attempts / s")];
    if !f.storms.is_empty() {
        legend.push(Legend::line(STORM, "storm"));
    }
    p.finish(&legend)
}

fn attempts_comparison_svg(runs: &[RunFigures]) -> String {
    let rates: Vec<Vec<(f64, f64)>> = runs.iter().map(|r| per_second(&r.series)).collect();
    let xmax = runs
        .iter()
        .map(|r| r.figures.duration.as_secs_f64())
        .fold(0.0, f64::max);
    let ymax = rates.iter().flatten().map(|p| p.1).fold(0.0, f64::max);
    let mut p = Plot::new(
        "Connection attempts per second, runs compared",
        Axis::new(0.0, xmax, "time since start (s)"),
        Axis::new(0.0, ymax, "attempts / s (100 ms buckets)"),
    );
    // Storm starts of the first run (the runs share the storm schedule).
    if let Some(first) = runs.first() {
        storm_marks(&mut p, &first.figures, false);
    }
    let mut legend = Vec::new();
    for (i, (run, rate)) in runs.iter().zip(&rates).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        p.line(rate, color, 1.4);
        label_peak(&mut p, rate, color);
        legend.push(Legend::line(color, &run.label));
    }
    p.finish(&legend)
}

fn reconnect_histogram_svg(run: &RunFigures) -> String {
    let us = &run.series.reconnect_us;
    let title = format!("Time to reconnect: {} ({} reconnects)", run.label, us.len());
    let Some(&max_us) = us.last() else {
        let mut p = Plot::new(
            &title,
            Axis::new(0.0, 1.0, "time to reconnect (ms)"),
            Axis::new(0.0, 1.0, "clients"),
        );
        p.note("no reconnects measured");
        return p.finish(&[]);
    };
    let xmax = nice_ceil(max_us as f64 / 1000.0);
    let width = xmax / HISTOGRAM_BARS as f64;
    let mut bars = vec![0u64; HISTOGRAM_BARS];
    for &v in us {
        let i = ((v as f64 / 1000.0) / width) as usize;
        bars[i.min(HISTOGRAM_BARS - 1)] += 1;
    }
    let ymax = bars.iter().copied().max().unwrap_or(0) as f64;
    let mut p = Plot::new(
        &title,
        Axis::new(0.0, xmax, "time to reconnect (ms)"),
        Axis::new(0.0, ymax, "clients"),
    );
    for (i, &n) in bars.iter().enumerate() {
        if n > 0 {
            p.bar(i as f64 * width, (i + 1) as f64 * width, n as f64, PALETTE[0]);
        }
    }
    let mut legend = vec![Legend::band(PALETTE[0], "clients per bin")];
    let marks = [
        ("p50", run.figures.reconnect.p50, PALETTE[2]),
        ("p99", run.figures.reconnect.p99, PALETTE[1]),
    ];
    for (name, value, color) in marks {
        if let Some(d) = value {
            let x = d.as_secs_f64() * 1000.0;
            p.vline(x, color, "6 4", 1.6);
            legend.push(Legend::dashed(color, &format!("{name} {}", fmt_duration(d))));
        }
    }
    p.finish(&legend)
}

/// Attempts per 100 ms bucket as a rate per second, at the bucket's start.
fn per_second(s: &Series) -> Vec<(f64, f64)> {
    let t = seconds(s);
    let scale = 1.0 / s.bucket.as_secs_f64().max(1e-9);
    s.attempts
        .iter()
        .enumerate()
        .map(|(i, &v)| (t(i), v as f64 * scale))
        .collect()
}

fn storm_marks(p: &mut Plot, f: &Figures, bands: bool) {
    for (i, s) in f.storms.iter().enumerate() {
        let x = s.at.as_secs_f64();
        if bands {
            let until = s.all_back_after.map_or(f.duration, |d| s.at + d).as_secs_f64();
            p.band(x, until.max(x), STORM, 0.10);
        }
        p.vline(x, STORM, "4 3", 1.2);
        p.top_label(x, &format!("S{} {} {:.0}%", i + 1, s.mode, s.fraction * 100.0), STORM);
    }
}

fn label_peak(p: &mut Plot, pts: &[(f64, f64)], color: &str) {
    let Some(&(x, y)) = pts.iter().fold(None, |best: Option<&(f64, f64)>, q| match best {
        Some(b) if b.1 >= q.1 => Some(b),
        _ => Some(q),
    }) else {
        return;
    };
    if y > 0.0 {
        p.point_label(
            x,
            y,
            &format!(
                "peak {}/s at {}",
                fmt_num(y, 1.0),
                fmt_offset(Duration::from_secs_f64(x))
            ),
            color,
        );
    }
}

/// An axis: value range after rounding to nice ticks, and its title.
struct Axis {
    lo: f64,
    hi: f64,
    step: f64,
    title: String,
}

impl Axis {
    fn new(lo: f64, hi: f64, title: &str) -> Axis {
        let hi = if hi.is_finite() && hi > lo { hi } else { lo + 1.0 };
        let step = nice_step((hi - lo) / 6.0);
        let hi = (hi / step).ceil() * step;
        Axis {
            lo,
            hi,
            step,
            title: title.to_string(),
        }
    }

    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let n = ((self.hi - self.lo) / self.step).round() as usize;
        (0..=n).map(move |i| self.lo + i as f64 * self.step)
    }

    fn frac(&self, v: f64) -> f64 {
        ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }
}

/// 1, 2 or 5 × a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let m = raw / mag;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// `v` rounded up to a whole number of [`nice_step`]s, so histogram bins have round edges.
fn nice_ceil(v: f64) -> f64 {
    let step = nice_step(v / 8.0);
    ((v / step).ceil() * step).max(step)
}

/// A tick label: as many decimals as `step` needs, thousands separated.
fn fmt_num(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let s = format!("{v:.decimals$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(a, b)| (a, Some(b)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

enum Swatch {
    Line,
    Dashed,
    Band,
}

struct Legend {
    color: String,
    label: String,
    swatch: Swatch,
}

impl Legend {
    fn line(color: &str, label: &str) -> Legend {
        Legend {
            color: color.into(),
            label: label.into(),
            swatch: Swatch::Line,
        }
    }
    fn dashed(color: &str, label: &str) -> Legend {
        Legend {
            color: color.into(),
            label: label.into(),
            swatch: Swatch::Dashed,
        }
    }
    fn band(color: &str, label: &str) -> Legend {
        Legend {
            color: color.into(),
            label: label.into(),
            swatch: Swatch::Band,
        }
    }
}

/// One chart being drawn: background layers first, then data, then the legend.
struct Plot {
    x: Axis,
    y: Axis,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    body: String,
    labels: String,
}

impl Plot {
    fn new(title: &str, x: Axis, y: Axis) -> Plot {
        let (left, right, top, bottom) = (78.0, WIDTH - 24.0, 70.0, HEIGHT - 52.0);
        let mut body = String::new();
        let _ = write!(
            body,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
             viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <title>{t}</title>\n\
             <text x=\"{cx}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{t}</text>\n",
            t = esc(title),
            cx = WIDTH / 2.0,
        );
        let mut p = Plot {
            x,
            y,
            left,
            right,
            top,
            bottom,
            body: String::new(),
            labels: String::new(),
        };
        // Grid and ticks.
        for v in p.y.ticks() {
            let y = p.py(v);
            let _ = writeln!(
                body,
                "<line x1=\"{l}\" y1=\"{y:.1}\" x2=\"{r}\" y2=\"{y:.1}\" stroke=\"#e6e6e6\"/>\
                 <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{}</text>",
                fmt_num(v, p.y.step),
                l = p.left,
                r = p.right,
                tx = p.left - 6.0,
                ty = y + 4.0,
            );
        }
        for v in p.x.ticks() {
            let x = p.px(v);
            let _ = writeln!(
                body,
                "<line x1=\"{x:.1}\" y1=\"{b}\" x2=\"{x:.1}\" y2=\"{b2}\" stroke=\"#444\"/>\
                 <text x=\"{x:.1}\" y=\"{ty}\" text-anchor=\"middle\">{}</text>",
                fmt_num(v, p.x.step),
                b = p.bottom,
                b2 = p.bottom + 5.0,
                ty = p.bottom + 18.0,
            );
        }
        let _ = writeln!(
            body,
            "<line x1=\"{l}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#444\"/>\
             <line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{b}\" stroke=\"#444\"/>\n\
             <text x=\"{cx}\" y=\"{xt}\" text-anchor=\"middle\" font-size=\"13\">{xtitle}</text>\n\
             <text transform=\"translate(18 {cy}) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">{ytitle}</text>",
            l = p.left,
            r = p.right,
            t = p.top,
            b = p.bottom,
            cx = (p.left + p.right) / 2.0,
            xt = p.bottom + 40.0,
            cy = (p.top + p.bottom) / 2.0,
            xtitle = esc(&p.x.title),
            ytitle = esc(&p.y.title),
        );
        p.body = body;
        p
    }

    fn px(&self, v: f64) -> f64 {
        self.left + self.x.frac(v) * (self.right - self.left)
    }

    fn py(&self, v: f64) -> f64 {
        self.bottom - self.y.frac(v) * (self.bottom - self.top)
    }

    fn line(&mut self, pts: &[(f64, f64)], color: &str, width: f64) {
        if pts.is_empty() {
            return;
        }
        let pts = reduce(pts);
        let mut d = String::with_capacity(pts.len() * 14);
        for (x, y) in &pts {
            let _ = write!(d, "{:.1},{:.1} ", self.px(*x), self.py(*y));
        }
        let _ = writeln!(
            self.body,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\" stroke-linejoin=\"round\" points=\"{}\"/>",
            d.trim_end()
        );
    }

    fn bar(&mut self, x0: f64, x1: f64, y: f64, color: &str) {
        let (a, b) = (self.px(x0), self.px(x1));
        let top = self.py(y);
        let _ = writeln!(
            self.body,
            "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\" fill-opacity=\"0.75\"/>",
            a + 0.5,
            (b - a - 1.0).max(0.5),
            (self.bottom - top).max(0.0),
        );
    }

    fn band(&mut self, x0: f64, x1: f64, color: &str, opacity: f64) {
        let (a, b) = (self.px(x0), self.px(x1));
        let _ = writeln!(
            self.body,
            "<rect x=\"{a:.1}\" y=\"{t}\" width=\"{:.1}\" height=\"{h}\" fill=\"{color}\" fill-opacity=\"{opacity}\"/>",
            (b - a).max(1.0),
            t = self.top,
            h = self.bottom - self.top,
        );
    }

    fn vline(&mut self, x: f64, color: &str, dash: &str, width: f64) {
        let x = self.px(x);
        let _ = writeln!(
            self.body,
            "<line x1=\"{x:.1}\" y1=\"{t}\" x2=\"{x:.1}\" y2=\"{b}\" stroke=\"{color}\" stroke-width=\"{width}\" \
             stroke-dasharray=\"{dash}\"/>",
            t = self.top,
            b = self.bottom,
        );
    }

    /// A label above the plot area at `x` (storm names).
    fn top_label(&mut self, x: f64, text: &str, color: &str) {
        let _ = writeln!(
            self.labels,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\" font-size=\"11\" text-anchor=\"start\">{}</text>",
            self.px(x) + 3.0,
            self.top - 6.0,
            esc(text)
        );
    }

    /// A dot at a data point with a label beside it, kept inside the plot.
    fn point_label(&mut self, x: f64, y: f64, text: &str, color: &str) {
        let (px, py) = (self.px(x), self.py(y));
        let anchor_right = px > (self.left + self.right) / 2.0;
        let (tx, anchor) = if anchor_right {
            (px - 8.0, "end")
        } else {
            (px + 8.0, "start")
        };
        let _ = writeln!(
            self.labels,
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3.5\" fill=\"{color}\"/>\
             <text x=\"{tx:.1}\" y=\"{:.1}\" fill=\"{color}\" font-weight=\"bold\" text-anchor=\"{anchor}\" \
             stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
            (py + 4.0).max(self.top + 12.0),
            esc(text)
        );
    }

    /// A message in the middle of an empty plot.
    fn note(&mut self, text: &str) {
        let _ = writeln!(
            self.labels,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#777\" font-size=\"14\">{}</text>",
            (self.left + self.right) / 2.0,
            (self.top + self.bottom) / 2.0,
            esc(text)
        );
    }

    fn finish(mut self, legend: &[Legend]) -> String {
        self.body.push_str(&self.labels);
        // One row above the plot area, right-aligned, so it never hides data.
        let widths: Vec<f64> = legend
            .iter()
            .map(|l| 36.0 + l.label.chars().count() as f64 * 6.6)
            .collect();
        let mut x = self.right - widths.iter().sum::<f64>();
        let y = self.top - 24.0;
        for (l, w) in legend.iter().zip(widths) {
            let _ = match l.swatch {
                Swatch::Line | Swatch::Dashed => write!(
                    self.body,
                    "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{c}\" stroke-width=\"2\"{}/>",
                    x + 22.0,
                    if matches!(l.swatch, Swatch::Dashed) {
                        " stroke-dasharray=\"6 4\""
                    } else {
                        ""
                    },
                    c = l.color,
                ),
                Swatch::Band => write!(
                    self.body,
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"22\" height=\"10\" fill=\"{c}\" fill-opacity=\"0.35\" \
                     stroke=\"{c}\"/>",
                    y - 5.0,
                    c = l.color,
                ),
            };
            let _ = writeln!(
                self.body,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 28.0,
                y + 4.0,
                esc(&l.label)
            );
            x += w;
        }
        self.body.push_str("</svg>\n");
        self.body
    }
}

/// At most [`MAX_LINE_POINTS`] points: groups of consecutive samples reduced to their minimum and
/// maximum, in time order.
fn reduce(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if pts.len() <= MAX_LINE_POINTS {
        return pts.to_vec();
    }
    let group = pts.len().div_ceil(MAX_LINE_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_LINE_POINTS + 2);
    for chunk in pts.chunks(group) {
        let lo = chunk.iter().fold(chunk[0], |a, b| if b.1 < a.1 { *b } else { a });
        let hi = chunk.iter().fold(chunk[0], |a, b| if b.1 > a.1 { *b } else { a });
        if lo.0 <= hi.0 {
            out.extend([lo, hi]);
        } else {
            out.extend([hi, lo]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_are_one_two_five() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(1300.0), 2000.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
        let a = Axis::new(0.0, 1234.0, "x");
        assert_eq!((a.step, a.hi), (500.0, 1500.0));
        assert_eq!(a.ticks().count(), 4);
    }

    #[test]
    fn numbers_get_separators_and_needed_decimals() {
        assert_eq!(fmt_num(12000.0, 2000.0), "12,000");
        assert_eq!(fmt_num(0.5, 0.1), "0.5");
        assert_eq!(fmt_num(999.0, 1.0), "999");
        assert_eq!(fmt_num(1234567.0, 1.0), "1,234,567");
    }

    #[test]
    fn long_lines_are_reduced_but_keep_their_spike() {
        let mut pts: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, 1.0)).collect();
        pts[7777].1 = 500.0;
        let r = reduce(&pts);
        assert!(r.len() <= MAX_LINE_POINTS);
        assert!(r.contains(&(7777.0, 500.0)));
        assert!(r.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
