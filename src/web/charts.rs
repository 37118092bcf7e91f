//! Small SVG charts drawn on the server, so the admin page needs no script.
//! Every chart carries a title and sits next to a table of the same numbers.

use std::fmt::Write;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Horizontal bars, one per label, with the number at the end of each bar.
pub fn bars(title: &str, items: &[(String, i64)]) -> String {
    let width = 520;
    let label_width = 170;
    let row = 30;
    let height = row * items.len().max(1) + 10;
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-labelledby=\"bars-title\" viewBox=\"0 0 {width} {height}\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title id=\"bars-title\">{}</title>",
        escape(title)
    );
    for (i, (label, value)) in items.iter().enumerate() {
        let y = 5 + i * row;
        let bar = (i64::from(width - label_width - 50) * value / max).max(if *value > 0 { 2 } else { 0 });
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{ty}\" class=\"chart-label\">{label}</text>\
             <rect x=\"{label_width}\" y=\"{y}\" width=\"{bar}\" height=\"20\" class=\"chart-bar\"/>\
             <text x=\"{tx}\" y=\"{ty}\" class=\"chart-value\">{value}</text>",
            ty = y + 15,
            label = escape(label),
            tx = i64::from(label_width) + bar + 6,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Two lines over the same weeks (opened and closed cases).
pub fn two_lines(title: &str, labels: &[String], first: (&str, &[i64]), second: (&str, &[i64])) -> String {
    let (width, height, left, bottom, top) = (560i64, 240i64, 40i64, 40i64, 20i64);
    let n = i64::try_from(labels.len()).unwrap_or(1).max(2);
    let max = first.1.iter().chain(second.1).copied().max().unwrap_or(0).max(1);
    let x = |i: usize| left + (width - left - 20) * i64::try_from(i).unwrap_or(0) / (n - 1);
    let y = |v: i64| top + (height - top - bottom) * (max - v) / max;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-labelledby=\"lines-title\" viewBox=\"0 0 {width} {height}\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title id=\"lines-title\">{}</title>\
         <line x1=\"{left}\" y1=\"{base}\" x2=\"{right}\" y2=\"{base}\" class=\"chart-axis\"/>\
         <text x=\"0\" y=\"{top_text}\" class=\"chart-value\">{max}</text><text x=\"0\" y=\"{base}\" class=\"chart-value\">0</text>",
        escape(title),
        base = height - bottom,
        right = width - 20,
        top_text = top + 5,
    );
    for (i, label) in labels.iter().enumerate() {
        if i % 2 == 0 || i + 1 == labels.len() {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" class=\"chart-tick\">{}</text>",
                x(i) - 14,
                height - bottom + 18,
                escape(label)
            );
        }
    }
    for ((name, values), class) in [(first, "chart-line-a"), (second, "chart-line-b")] {
        let points: Vec<String> = values.iter().enumerate().map(|(i, v)| format!("{},{}", x(i), y(*v))).collect();
        let _ = write!(svg, "<polyline points=\"{}\" class=\"{class}\" fill=\"none\"/>", points.join(" "));
        for (i, v) in values.iter().enumerate() {
            let _ = write!(
                svg,
                "<circle cx=\"{}\" cy=\"{}\" r=\"3\" class=\"{class}\"><title>{}: {v}</title></circle>",
                x(i),
                y(*v),
                escape(name)
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{left}\" y=\"{h}\" class=\"chart-legend-a\">■ {}</text><text x=\"{l2}\" y=\"{h}\" class=\"chart-legend-b\">■ {}</text></svg>",
        escape(first.0),
        escape(second.0),
        h = height - 5,
        l2 = left + 150,
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_values_shown() {
        let svg = bars("Open <cases>", &[("<script>".into(), 3), ("B".into(), 0)]);
        assert!(svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("<script>"));
        assert!(svg.contains(">3</text>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn lines_have_a_point_per_week() {
        let labels: Vec<String> = (1..=12).map(|w| format!("W{w}")).collect();
        let svg = two_lines("Weekly", &labels, ("Opened", &[1; 12]), ("Closed", &[0; 12]));
        assert_eq!(svg.matches("<circle").count(), 24);
    }
}
