//! Minimal SVG charts for the simulator's report: no plotting crate needed for lines and bars.

use std::fmt::Write as _;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const MARGIN: f64 = 60.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// A named series of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart of `series` as an SVG document.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let all = series.iter().flat_map(|s| s.points.iter());
    let x_max = all.clone().map(|p| p.0).fold(0.0, f64::max).max(1e-9);
    let y_max = all.map(|p| p.1).fold(0.0, f64::max).max(1e-9);
    let mut svg = frame(title, x_label, y_label, x_max, y_max);
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x, x_max), sy(*y, y_max)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            points.join(" ")
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.0}" y="{:.0}" fill="{color}" font-size="12">{}</text>"#,
            WIDTH - MARGIN - 160.0,
            MARGIN + 16.0 * (i as f64 + 1.0),
            escape(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A bar chart with one bar per `(label, value)`.
pub fn bar_chart(title: &str, x_label: &str, y_label: &str, bars: &[(String, f64)]) -> String {
    let y_max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    let mut svg = frame(title, x_label, y_label, 0.0, y_max);
    let slot = (WIDTH - 2.0 * MARGIN) / bars.len().max(1) as f64;
    for (i, (label, value)) in bars.iter().enumerate() {
        let x = MARGIN + slot * i as f64 + slot * 0.1;
        let y = sy(*value, y_max);
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
            slot * 0.8,
            HEIGHT - MARGIN - y,
            COLORS[0]
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.0}" font-size="12" text-anchor="middle">{}</text>"#,
            x + slot * 0.4,
            HEIGHT - MARGIN + 16.0,
            escape(label)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{value}</text>"#,
            x + slot * 0.4,
            y - 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The empirical CDF of `values` as chart points.
pub fn cdf(values: &[f64]) -> Vec<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len().max(1) as f64;
    // At most ~500 points keeps the files small.
    let step = (sorted.len() / 500).max(1);
    let mut points: Vec<(f64, f64)> = sorted
        .iter()
        .enumerate()
        .step_by(step)
        .map(|(i, v)| (*v, (i + 1) as f64 / n))
        .collect();
    if let Some(last) = sorted.last() {
        points.push((*last, 1.0));
    }
    points
}

fn frame(title: &str, x_label: &str, y_label: &str, x_max: f64, y_max: f64) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{:.0}" y="24" font-size="16" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let (left, bottom, right, top) = (MARGIN, HEIGHT - MARGIN, WIDTH - MARGIN, MARGIN);
    let _ = writeln!(
        svg,
        r#"<path d="M{left},{top} L{left},{bottom} L{right},{bottom}" stroke="black" fill="none"/>"#
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let y = bottom - f * (bottom - top);
        let _ = writeln!(
            svg,
            r#"<text x="{:.0}" y="{y:.0}" font-size="11" text-anchor="end">{}</text>"#,
            left - 6.0,
            tick(y_max * f)
        );
        if x_max > 0.0 {
            let x = left + f * (right - left);
            let _ = writeln!(
                svg,
                r#"<text x="{x:.0}" y="{:.0}" font-size="11" text-anchor="middle">{}</text>"#,
                bottom + 16.0,
                tick(x_max * f)
            );
        }
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.0}" y="{:.0}" font-size="12" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        HEIGHT - 16.0,
        escape(x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{:.0}" font-size="12" text-anchor="middle" transform="rotate(-90 16 {:.0})">{}</text>"#,
        HEIGHT / 2.0,
        HEIGHT / 2.0,
        escape(y_label)
    );
    svg
}

fn sx(x: f64, x_max: f64) -> f64 {
    MARGIN + x / x_max * (WIDTH - 2.0 * MARGIN)
}

fn sy(y: f64, y_max: f64) -> f64 {
    HEIGHT - MARGIN - y / y_max * (HEIGHT - 2.0 * MARGIN)
}

fn tick(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_svg() {
        let series = [Series {
            name: "a<b".into(),
            points: cdf(&[3.0, 1.0, 2.0]),
        }];
        let svg = line_chart("t", "x", "y", &series);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a&lt;b"));
        let bars = bar_chart("d", "depth", "members", &[("1".into(), 4.0)]);
        assert!(bars.contains("<rect x"));
        assert_eq!(cdf(&[2.0, 1.0]).last(), Some(&(2.0, 1.0)));
    }
}
