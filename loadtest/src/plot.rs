//! The latency-percentile plot as SVG: latency (log scale) against percentile, on the
//! HdrHistogram axis where 90%, 99%, 99.9%, ... are equally spaced, one line per series.

use std::fmt::Write as _;

/// Width and height of the drawing, and its margins.
const W: f64 = 800.0;
const H: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// The rightmost point: 99.9999%.
const MAX_NINES: f64 = 6.0;
const COLOURS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];

/// A named latency curve: (percentile, milliseconds) points.
pub struct Series<'a> {
    /// The legend's text.
    pub name: String,
    /// The points, percentiles ascending.
    pub curve: &'a [(f64, f64)],
}

/// How many nines a percentile has: 90% is 1, 99% is 2; capped at `MAX_NINES`.
fn nines(p: f64) -> f64 {
    if p >= 100.0 {
        return MAX_NINES;
    }
    (-(1.0 - p / 100.0).log10()).min(MAX_NINES)
}

/// Draws the series; `title` heads the plot.
pub fn svg(title: &str, series: &[Series<'_>]) -> String {
    let points = series.iter().flat_map(|s| s.curve.iter().map(|p| p.1));
    let max = points.clone().fold(0.0f64, f64::max).max(0.01);
    let min = points
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min)
        .min(max);
    let lo = 10f64.powf(min.max(0.001).log10().floor());
    let hi = 10f64.powf(max.log10().ceil()).max(lo * 10.0);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |p: f64| LEFT + nines(p) / MAX_NINES * pw;
    let y = |ms: f64| {
        let v = ms.max(lo);
        TOP + ph - (v / lo).log10() / (hi / lo).log10() * ph
    };
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
"#,
        LEFT + pw / 2.0,
        escape(title)
    );
    // Grid: a vertical line per nine, a horizontal one per power of ten.
    for n in 0..=MAX_NINES as u32 {
        let label = match n {
            0 => "0%".to_string(),
            _ => format!("{}%", 100.0 - 100.0 / 10f64.powi(n as i32)),
        };
        let gx = LEFT + n as f64 / MAX_NINES * pw;
        let _ = writeln!(
            out,
            r##"<line x1="{gx}" y1="{TOP}" x2="{gx}" y2="{}" stroke="#ddd"/><text x="{gx}" y="{}" text-anchor="middle">{label}</text>"##,
            TOP + ph,
            TOP + ph + 18.0
        );
    }
    let mut tick = lo;
    while tick <= hi * 1.0001 {
        let gy = y(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{gy}" x2="{}" y2="{gy}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            gy + 4.0,
            format_ms(tick)
        );
        tick *= 10.0;
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text><text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">latency (ms, log scale)</text>"#,
        LEFT + pw / 2.0,
        H - 10.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = s
            .curve
            .iter()
            .map(|&(p, ms)| format!("{:.1},{:.1}", x(p), y(ms)))
            .collect();
        let ly = TOP + 10.0 + i as f64 * 18.0;
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>
<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            path.join(" "),
            LEFT + pw + 12.0,
            LEFT + pw + 32.0,
            LEFT + pw + 38.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn format_ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_has_one_line_per_series_and_is_well_formed() {
        let a = [(0.0, 0.2), (50.0, 0.5), (99.0, 2.0), (100.0, 9.0)];
        let b = [(0.0, 1.0), (50.0, 3.0), (99.9, 40.0), (100.0, 50.0)];
        let svg = svg(
            "reads <rest>",
            &[
                Series {
                    name: "read".into(),
                    curve: &a,
                },
                Series {
                    name: "update".into(),
                    curve: &b,
                },
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("reads &lt;rest&gt;"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn nines_space_the_percentiles_evenly() {
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0), MAX_NINES);
    }
}
