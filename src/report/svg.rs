//! Inline SVG trend charts: measured values over time with the target as a line.
//! The time axis spans the runs, not the report's period, so a day of runs in a
//! 90-day report is spread across the chart instead of piled at its right edge.
//! Many runs are bucketed per pixel column (keeping the worst value) so a chart
//! of 100,000 runs stays small and still shows every miss.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};

use super::{Point, day, escape};
use crate::duration::fmt_ms;

const W: f64 = 560.0;
const H: f64 = 170.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 26.0;
const MAX_MARKS: usize = 400;
/// Share of the axis left empty on each side, so the first and last marks sit
/// inside the frame.
const PAD: f64 = 0.04;

/// The time axis: from the first to the last run (the period when there are
/// none); runs at one instant sit in its middle.
fn axis(points: &[Point], from: DateTime<Utc>, to: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let (lo, hi) = match (points.iter().map(|p| p.at).min(), points.iter().map(|p| p.at).max()) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => return (from, to),
    };
    let span = (hi - lo).max(TimeDelta::milliseconds(2));
    let mid = lo + (hi - lo) / 2;
    let half = span / 2 + TimeDelta::milliseconds((span.num_milliseconds() as f64 * PAD) as i64);
    (mid - half, mid + half)
}

/// An axis end: the day, with the time of day as precise as the span needs.
fn label(t: DateTime<Utc>, span: TimeDelta) -> String {
    if span < TimeDelta::seconds(10) {
        t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
    } else if span < TimeDelta::minutes(10) {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    } else if span < TimeDelta::days(2) {
        t.format("%Y-%m-%d %H:%M").to_string()
    } else {
        day(t)
    }
}

pub fn trend_chart(
    title: &str,
    points: &[Point],
    target_ms: Option<f64>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" role="img" viewBox="0 0 {W} {H}" width="{W}" height="{H}"><title>{}</title>"#,
        escape(title)
    );
    let (plot_w, plot_h) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let (from, to) = axis(points, from, to);
    let span = (to - from).num_milliseconds().max(1) as f64;
    let x_of = |t: DateTime<Utc>| LEFT + ((t - from).num_milliseconds() as f64 / span).clamp(0.0, 1.0) * plot_w;
    let max_v = points.iter().filter_map(|p| p.value_ms).fold(target_ms.unwrap_or(0.0), f64::max);
    let top_v = if max_v > 0.0 { max_v * 1.15 } else { 1000.0 };
    let y_of = |v: f64| TOP + plot_h - (v / top_v).clamp(0.0, 1.0) * plot_h;

    // Axes and labels.
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fbfbfd" stroke="#c9ccd3"/>"##
    );
    for frac in [0.0, 0.5, 1.0] {
        let v = top_v * frac;
        let y = y_of(v);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e5ea"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="ax">{}</text>"##,
            LEFT + plot_w,
            LEFT - 4.0,
            y + 4.0,
            escape(&fmt_ms(Some(v)))
        );
    }
    let _ = write!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" class="ax">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" class="ax">{}</text>"#,
        H - 8.0,
        label(from, to - from),
        LEFT + plot_w,
        H - 8.0,
        label(to, to - from)
    );

    // Few runs: one mark each. Many: one per column, keeping the worst value
    // and whether any run there failed.
    let marks: Vec<(f64, Option<f64>, bool)> = if points.len() <= MAX_MARKS {
        points.iter().map(|p| (x_of(p.at), p.value_ms, !p.passed)).collect()
    } else {
        let mut buckets: Vec<Option<(f64, Option<f64>, bool)>> = vec![None; MAX_MARKS];
        for p in points {
            let col = ((((x_of(p.at) - LEFT) / plot_w) * (MAX_MARKS as f64 - 1.0)).round() as usize).min(MAX_MARKS - 1);
            let b = buckets[col].get_or_insert((x_of(p.at), None, false));
            if let Some(v) = p.value_ms {
                b.1 = Some(b.1.map_or(v, |w: f64| w.max(v)));
            }
            b.2 |= !p.passed;
        }
        buckets.into_iter().flatten().collect()
    };
    let measured: Vec<(f64, f64, bool)> = marks.iter().filter_map(|(x, v, f)| v.map(|v| (*x, v, *f))).collect();
    if measured.len() > 1 {
        out.push_str(r##"<polyline fill="none" stroke="#3b6fd6" stroke-width="1.5" points=""##);
        for (x, v, _) in &measured {
            let _ = write!(out, "{x:.1},{:.1} ", y_of(*v));
        }
        out.push_str(r#""/>"#);
    }
    for (x, v, failed) in &marks {
        match v {
            Some(v) => {
                let _ = write!(
                    out,
                    r#"<circle cx="{x:.1}" cy="{:.1}" r="3" class="{}"><title>{}</title></circle>"#,
                    y_of(*v),
                    if *failed { "bad" } else { "good" },
                    escape(&fmt_ms(Some(*v)))
                );
            }
            None => {
                let y = TOP + plot_h;
                let _ = write!(
                    out,
                    r#"<path d="M{:.1} {:.1} l4 -7 l4 7 z" class="bad"><title>not measured</title></path>"#,
                    x - 4.0,
                    y
                );
            }
        }
    }
    if points.len() > MAX_MARKS {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" class="ax">{} runs: each point is the worst of its time slice</text>"#,
            LEFT + 4.0,
            TOP + 10.0,
            points.len()
        );
    }
    if let Some(t) = target_ms {
        let y = y_of(t);
        let _ = write!(
            out,
            r##"<line class="target" x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#c62828" stroke-width="1.5" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tg">target {}</text>"##,
            LEFT + plot_w,
            LEFT + plot_w - 4.0,
            y - 4.0,
            escape(&fmt_ms(Some(t)))
        );
    }
    if points.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="ax">no runs in the period</text>"#,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    out.push_str("</svg>");
    out
}
