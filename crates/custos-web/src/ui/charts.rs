//! Small SVG charts made on the server. Each has a `<title>` and a `<desc>`
//! that says in words what the bars show, and takes its colours from the
//! stylesheet (classes, no inline style), so the strict CSP holds.

use std::fmt::Write;

/// One bar: its label, its value, and the value in words.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Short label under or beside the bar.
    pub label: String,
    /// The value that sets its length.
    pub value: f64,
    /// The value as people read it.
    pub text: String,
}

/// Escapes text for SVG/HTML.
pub fn esc(s: &str) -> String {
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

fn description(bars: &[Bar]) -> String {
    bars.iter()
        .map(|b| format!("{}: {}", b.label, b.text))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Horizontal bars with labels on the left (pipeline stages).
pub fn hbars(id: &str, title: &str, bars: &[Bar]) -> String {
    let row = 22.0;
    let label_w = 96.0;
    let width = 320.0;
    let bar_w = width - label_w - 8.0;
    let height = (bars.len().max(1) as f64) * row;
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" focusable=\"false\">\
<title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        esc(title),
        esc(&description(bars))
    );
    for (i, b) in bars.iter().enumerate() {
        let y = i as f64 * row;
        let w = if max > 0.0 {
            (b.value / max * bar_w).max(if b.value > 0.0 { 2.0 } else { 0.0 })
        } else {
            0.0
        };
        let _ = write!(
            s,
            "<text class=\"chart-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
<rect class=\"chart-track\" x=\"{label_w}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"14\" rx=\"2\"></rect>\
<rect class=\"chart-bar\" x=\"{label_w}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"14\" rx=\"2\"></rect>",
            label_w - 6.0,
            y + 15.0,
            esc(&b.label),
            y + 4.0,
            y + 4.0,
        );
    }
    s.push_str("</svg>");
    s
}

/// Vertical bars with labels underneath (months, days). `highlight` marks one
/// bar (e.g. this month) with a second class.
pub fn vbars(id: &str, title: &str, bars: &[Bar], highlight: Option<usize>) -> String {
    let width = 320.0;
    let height = 96.0;
    let base = 78.0;
    let n = bars.len().max(1) as f64;
    let slot = width / n;
    let bw = (slot * 0.62).min(32.0);
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" focusable=\"false\">\
<title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>\
<line class=\"chart-axis\" x1=\"0\" y1=\"{base}\" x2=\"{width}\" y2=\"{base}\"></line>",
        esc(title),
        esc(&description(bars))
    );
    let every = if bars.len() > 8 { 2 } else { 1 };
    for (i, b) in bars.iter().enumerate() {
        let x = i as f64 * slot + (slot - bw) / 2.0;
        let h = if max > 0.0 {
            (b.value / max * (base - 6.0)).max(if b.value > 0.0 { 2.0 } else { 0.0 })
        } else {
            0.0
        };
        let class = if Some(i) == highlight {
            "chart-bar chart-now"
        } else {
            "chart-bar"
        };
        let _ = write!(
            s,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{h:.1}\" rx=\"2\"></rect>",
            base - h
        );
        if i % every == 0 || Some(i) == highlight {
            let _ = write!(
                s,
                "<text class=\"chart-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + bw / 2.0,
                base + 14.0,
                esc(&b.label)
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_have_a_title_and_words_and_escape_labels() {
        let bars = vec![
            Bar {
                label: "Lead".into(),
                value: 3.0,
                text: "3 deals".into(),
            },
            Bar {
                label: "<won>".into(),
                value: 0.0,
                text: "none".into(),
            },
        ];
        let svg = hbars("x", "Deals by stage", &bars);
        assert!(svg.contains("<title id=\"x-t\">Deals by stage</title>"));
        assert!(svg.contains("Lead: 3 deals; &lt;won&gt;: none"));
        assert!(!svg.contains("style="));
        let svg = vbars("y", "Won", &bars, Some(1));
        assert!(svg.contains("chart-now"));
    }
}
