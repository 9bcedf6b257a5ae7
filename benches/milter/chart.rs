//! The results as an SVG chart, written by hand (no plotting crate): grouped bars of
//! messages per second per workload for the library beside the wire floor, the Rust peer and
//! libmilter, and a second panel with the memory each idle connection costs.

use std::fmt::Write as _;

use super::host::{load_average, machine};
use super::{Impl, Params, Results, ServerKind, Workload, stat};

const WIDTH: f64 = 960.0;
const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";
/// Plot area of the rate panel.
const RATE_LEFT: f64 = 90.0;
const RATE_TOP: f64 = 120.0;
const RATE_HEIGHT: f64 = 300.0;
/// Plot area of the memory panel (one row per server).
const MEMORY_TOP: f64 = 520.0;
const MEMORY_LEFT: f64 = 250.0;
const ROW: f64 = 26.0;

/// One server drawn: which, its legend name, its colour.
struct Series {
    imp: Impl,
    name: &'static str,
    colour: &'static str,
}

/// The servers drawn, in legend order (full replies only).
const SERVERS: [Series; 5] = [
    Series {
        imp: Impl::Floor,
        name: "wire floor (no library)",
        colour: "#9e9e9e",
    },
    Series {
        imp: Impl::Ours,
        name: "async-milter on async-std",
        colour: "#1f5fa8",
    },
    Series {
        imp: Impl::OursTokio,
        name: "async-milter on tokio",
        colour: "#6aa7de",
    },
    Series {
        imp: Impl::Miltr,
        name: "miltr 0.2 on tokio",
        colour: "#e6862e",
    },
    Series {
        imp: Impl::Libmilter,
        name: "libmilter 8.17 (C)",
        colour: "#3c9a4b",
    },
];

/// A figure over the runs.
#[derive(Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

/// Short group labels for the workloads the chart knows; others show their name.
const LABELS: [(Workload, &str, &str); 4] = [
    (Workload::W1, "W1", "1 connection"),
    (Workload::W2, "W2", "64 connections"),
    (Workload::W3, "W3", "1 MiB bodies"),
    (Workload::W4, "W4", "1 message per connection"),
];

fn kind(imp: Impl) -> ServerKind {
    ServerKind {
        imp,
        no_reply: false,
    }
}

/// Median, min and max of a figure over the runs, if measured.
fn figure(
    results: &Results,
    wl: Workload,
    imp: Impl,
    pick: fn(&super::Sample) -> Option<f64>,
) -> Option<Spread> {
    let samples = results.get(&(wl, kind(imp))).filter(|s| !s.is_empty())?;
    let values: Vec<super::Sample> = samples
        .iter()
        .filter_map(|s| {
            Some(super::Sample {
                rate: pick(s)?,
                ..super::Sample::default()
            })
        })
        .collect();
    if values.is_empty() {
        return None;
    }
    let s = stat(&values, |x| x.rate);
    Some(Spread {
        median: s.median,
        min: s.min,
        max: s.max,
    })
}

/// A round axis step giving about `ticks` ticks up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    let raw = (max / ticks).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A number as a bar label: no decimals from 100 on, fewer digits below.
fn label(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// `10000` as `10,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// An axis tick: as many decimals as the step needs.
fn tick_label(value: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{value:.0}")
    } else if step >= 0.1 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn text(svg: &mut String, x: f64, y: f64, size: f64, anchor: &str, extra: &str, body: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" {extra}>{}</text>"#,
        escape(body)
    );
}

/// The chart as SVG text.
pub(super) fn svg(results: &Results, workloads: &[Workload], params: &Params) -> String {
    let groups: Vec<Workload> = workloads
        .iter()
        .copied()
        .filter(|&wl| wl != Workload::W5)
        .filter(|&wl| {
            SERVERS
                .iter()
                .any(|s| figure(results, wl, s.imp, rate).is_some())
        })
        .collect();
    let servers: Vec<_> = SERVERS
        .iter()
        .filter(|s| {
            workloads.iter().any(|&wl| {
                results
                    .get(&(wl, kind(s.imp)))
                    .is_some_and(|v| !v.is_empty())
            })
        })
        .collect();
    let idle: Vec<_> = servers
        .iter()
        .filter_map(|s| {
            Some((
                *s,
                figure(results, Workload::W5, s.imp, |x| x.rss_per_conn_kib)?,
            ))
        })
        .collect();
    let height = MEMORY_TOP + ROW * idle.len().max(1) as f64 + 90.0;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="{FONT}">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    text(
        &mut svg,
        WIDTH / 2.0,
        30.0,
        20.0,
        "middle",
        r#"font-weight="bold""#,
        "async-milter benchmark: the same filter on each server",
    );
    text(
        &mut svg,
        WIDTH / 2.0,
        52.0,
        12.0,
        "middle",
        r##"fill="#555""##,
        &format!(
            "Reads every header and the body, adds a header, every event answered. Median of {} runs, whiskers min–max. TCP loopback, one shared core.",
            params.reps
        ),
    );

    // Legend, centred (text width estimated at 7 px a character).
    let widths: Vec<f64> = servers
        .iter()
        .map(|s| 20.0 + 7.0 * s.name.chars().count() as f64)
        .collect();
    let total = widths.iter().sum::<f64>() + 24.0 * (widths.len().max(1) - 1) as f64;
    let mut x = ((WIDTH - total) / 2.0).max(10.0);
    for (Series { name, colour, .. }, width) in servers.iter().zip(&widths) {
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="70" width="14" height="14" fill="{colour}"/>"#
        );
        text(&mut svg, x + 20.0, 82.0, 13.0, "start", "", name);
        x += width + 24.0;
    }

    rate_panel(&mut svg, results, &groups, &servers);
    memory_panel(&mut svg, &idle, params.w5_conns);

    text(
        &mut svg,
        20.0,
        height - 36.0,
        11.0,
        "start",
        r##"fill="#555""##,
        &format!(
            "Machine: {}; load average at the end {}",
            machine(),
            load_average()
        ),
    );
    text(
        &mut svg,
        20.0,
        height - 18.0,
        11.0,
        "start",
        r##"fill="#555""##,
        "Reproduce: cargo bench --bench milter (benches/milter.rs; tables in benches/results/results.md)",
    );
    svg.push_str("</svg>\n");
    svg
}

#[allow(clippy::unnecessary_wraps)] // a `figure` picker
fn rate(sample: &super::Sample) -> Option<f64> {
    Some(sample.rate)
}

/// Messages per second, grouped by workload.
fn rate_panel(svg: &mut String, results: &Results, groups: &[Workload], servers: &[&Series]) {
    let width = WIDTH - RATE_LEFT - 30.0;
    let bottom = RATE_TOP + RATE_HEIGHT;
    text(
        svg,
        RATE_LEFT,
        RATE_TOP - 14.0,
        15.0,
        "start",
        r#"font-weight="bold""#,
        "Messages per second (higher is better)",
    );
    let max = groups
        .iter()
        .flat_map(|&wl| {
            servers
                .iter()
                .filter_map(move |s| figure(results, wl, s.imp, rate))
        })
        .map(|spread| spread.max)
        .fold(0.0, f64::max);
    let step = nice_step(max.max(1.0), 5.0);
    let top_value = (max / step).ceil().max(1.0) * step;
    let y = |value: f64| bottom - value / top_value * RATE_HEIGHT;
    // Grid and axis labels.
    let mut tick = 0.0;
    while tick <= top_value + step / 2.0 {
        let ty = y(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{RATE_LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e3e3e3"/>"##,
            RATE_LEFT + width
        );
        text(
            svg,
            RATE_LEFT - 8.0,
            ty + 4.0,
            12.0,
            "end",
            "",
            &tick_label(tick, step),
        );
        tick += step;
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{RATE_LEFT}" y1="{bottom}" x2="{:.1}" y2="{bottom}" stroke="#333"/>"##,
        RATE_LEFT + width
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{RATE_LEFT}" y1="{RATE_TOP}" x2="{RATE_LEFT}" y2="{bottom}" stroke="#333"/>"##
    );
    text(
        svg,
        24.0,
        RATE_TOP + RATE_HEIGHT / 2.0,
        13.0,
        "middle",
        &format!(
            r#"transform="rotate(-90 24 {:.1})""#,
            RATE_TOP + RATE_HEIGHT / 2.0
        ),
        "messages / s",
    );
    if groups.is_empty() {
        return;
    }
    let group_width = width / groups.len() as f64;
    let bar = (group_width * 0.8 / servers.len().max(1) as f64).min(44.0);
    for (g, &wl) in groups.iter().enumerate() {
        let centre = RATE_LEFT + group_width * (g as f64 + 0.5);
        let first = centre - bar * servers.len() as f64 / 2.0;
        for (i, server) in servers.iter().enumerate() {
            let Some(Spread { median, min, max }) = figure(results, wl, server.imp, rate) else {
                continue;
            };
            let x = first + bar * i as f64;
            let top = y(median);
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                x + 1.0,
                bar - 2.0,
                bottom - top,
                server.colour
            );
            let mid = x + bar / 2.0;
            let _ = writeln!(
                svg,
                r##"<line x1="{mid:.1}" y1="{:.1}" x2="{mid:.1}" y2="{:.1}" stroke="#222" stroke-width="1"/>"##,
                y(max),
                y(min)
            );
            text(
                svg,
                mid,
                y(max).min(top) - 5.0,
                10.0,
                "middle",
                "",
                &label(median),
            );
        }
        let (name, detail) = LABELS.iter().find(|l| l.0 == wl).map_or_else(
            || (format!("{wl:?}"), String::new()),
            |l| (l.1.to_owned(), l.2.to_owned()),
        );
        text(
            svg,
            centre,
            bottom + 18.0,
            13.0,
            "middle",
            r#"font-weight="bold""#,
            &name,
        );
        text(
            svg,
            centre,
            bottom + 34.0,
            12.0,
            "middle",
            r##"fill="#555""##,
            &detail,
        );
    }
}

/// RSS growth per idle connection (W5), one horizontal bar per server.
fn memory_panel(svg: &mut String, idle: &[(&Series, Spread)], conns: usize) {
    text(
        svg,
        RATE_LEFT,
        MEMORY_TOP - 30.0,
        15.0,
        "start",
        r#"font-weight="bold""#,
        "Memory per idle connection (lower is better)",
    );
    text(
        svg,
        RATE_LEFT,
        MEMORY_TOP - 12.0,
        12.0,
        "start",
        r##"fill="#555""##,
        &format!(
            "W5: growth of the server's resident memory over {} negotiated idle connections",
            thousands(conns)
        ),
    );
    if idle.is_empty() {
        return;
    }
    let width = WIDTH - MEMORY_LEFT - 80.0;
    let max = idle
        .iter()
        .map(|(_, f)| f.max)
        .fold(0.0, f64::max)
        .max(0.01);
    let step = nice_step(max, 4.0);
    let top_value = (max / step).ceil().max(1.0) * step;
    let x = |value: f64| MEMORY_LEFT + value / top_value * width;
    let bottom = MEMORY_TOP + ROW * idle.len() as f64;
    let mut tick = 0.0;
    while tick <= top_value + step / 2.0 {
        let tx = x(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{tx:.1}" y1="{MEMORY_TOP}" x2="{tx:.1}" y2="{bottom:.1}" stroke="#e3e3e3"/>"##
        );
        text(
            svg,
            tx,
            bottom + 16.0,
            12.0,
            "middle",
            "",
            &tick_label(tick, step),
        );
        tick += step;
    }
    text(
        svg,
        MEMORY_LEFT + width / 2.0,
        bottom + 34.0,
        13.0,
        "middle",
        "",
        "KiB per connection",
    );
    for (i, (Series { name, colour, .. }, Spread { median, min, max })) in idle.iter().enumerate() {
        let top = MEMORY_TOP + ROW * i as f64 + 4.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{MEMORY_LEFT}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/>"#,
            (x(*median) - MEMORY_LEFT).max(1.0),
            ROW - 8.0
        );
        let mid = top + (ROW - 8.0) / 2.0;
        if max > min {
            let _ = writeln!(
                svg,
                r##"<line x1="{:.1}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="#222"/>"##,
                x(*min),
                x(*max)
            );
        }
        text(svg, MEMORY_LEFT - 8.0, mid + 4.0, 12.0, "end", "", name);
        text(
            svg,
            x(*max) + 6.0,
            mid + 4.0,
            11.0,
            "start",
            "",
            &label(*median),
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{MEMORY_LEFT}" y1="{MEMORY_TOP}" x2="{MEMORY_LEFT}" y2="{bottom:.1}" stroke="#333"/>"##
    );
}
