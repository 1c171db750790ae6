//! The measuring harness: interleaved repetitions, medians, tables and a JSON record.
//!
//! Contenders of one comparison run in turns (A B C A B C …) so that a machine that drifts
//! (another tenant, thermal limits) does not bias one side; each figure is the median of the
//! repetitions after one warm-up round.

use std::fmt::Write as _;
use std::time::Instant;

/// One contender: a name and a closure returning nanoseconds per operation for one run, or
/// `None` when the contender is not available here (reported as skipped, never faked).
pub struct Contender<'a> {
    pub name: String,
    pub run: Box<dyn FnMut() -> Option<f64> + 'a>,
}

impl<'a> Contender<'a> {
    pub fn new(name: impl Into<String>, run: impl FnMut() -> Option<f64> + 'a) -> Self {
        Contender {
            name: name.into(),
            run: Box::new(run),
        }
    }
}

/// The figures of one contender in one comparison.
#[derive(Clone, Debug)]
pub struct Figure {
    pub name: String,
    /// `None`: skipped.
    pub samples: Option<Vec<f64>>,
}

impl Figure {
    pub fn median(&self) -> Option<f64> {
        self.samples.as_ref().map(|s| s[s.len() / 2])
    }
    pub fn min(&self) -> Option<f64> {
        self.samples.as_ref().map(|s| s[0])
    }
    pub fn max(&self) -> Option<f64> {
        self.samples.as_ref().map(|s| s[s.len() - 1])
    }
}

/// One comparison: contenders measured side by side; the first is ours.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub group: String,
    pub name: String,
    /// What one operation is ("task", "round trip", …).
    pub unit: String,
    pub figures: Vec<Figure>,
}

/// Runs the contenders interleaved: one warm-up round, then `reps` rounds.
pub fn compare(
    group: &str,
    name: &str,
    unit: &str,
    reps: usize,
    mut contenders: Vec<Contender<'_>>,
) -> Comparison {
    let started = Instant::now();
    let mut samples: Vec<Option<Vec<f64>>> = contenders.iter().map(|_| Some(Vec::new())).collect();
    for round in 0..=reps {
        for (c, s) in contenders.iter_mut().zip(samples.iter_mut()) {
            if s.is_none() {
                continue;
            }
            match (c.run)() {
                Some(ns) if round > 0 => s.as_mut().unwrap().push(ns),
                Some(_) => {}
                None => *s = None,
            }
        }
    }
    let figures = contenders
        .iter()
        .zip(samples)
        .map(|(c, s)| Figure {
            name: c.name.clone(),
            samples: s.map(|mut v| {
                v.sort_by(|a, b| a.partial_cmp(b).unwrap());
                v
            }),
        })
        .collect();
    let cmp = Comparison {
        group: group.into(),
        name: name.into(),
        unit: unit.into(),
        figures,
    };
    print_comparison(&cmp);
    eprintln!("  ({:.1?})", started.elapsed());
    cmp
}

fn human_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Prints a comparison: per contender the median per operation, the rate, the min–max spread
/// and the ratio to ours (how many times slower the peer is: above 1 means we are faster).
pub fn print_comparison(cmp: &Comparison) {
    println!(
        "\n{} — {} (median per {}, spread min–max, ratio = peer / ours)",
        cmp.group, cmp.name, cmp.unit
    );
    let ours = cmp.figures.first().and_then(Figure::median);
    for f in &cmp.figures {
        match (f.median(), f.min(), f.max()) {
            (Some(m), Some(lo), Some(hi)) => {
                let ratio = match ours {
                    Some(o) if f.name != cmp.figures[0].name => format!("{:>7.2}×", m / o),
                    _ => "    ours".into(),
                };
                println!(
                    "  {:<36} {:>11}  {:>14}/s  [{} – {}]  {}",
                    f.name,
                    human_ns(m),
                    format_rate(1e9 / m),
                    human_ns(lo),
                    human_ns(hi),
                    ratio
                );
            }
            _ => println!("  {:<36} skipped (not available on this machine)", f.name),
        }
    }
}

fn format_rate(r: f64) -> String {
    let s = format!("{r:.0}");
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs one case of a CPython script in a fresh interpreter: the script prints `case ns`.
/// `None` (reported as skipped) if python3 is missing or the script fails.
pub fn cpython(script: &std::path::Path, workers: usize, case: &str) -> Option<f64> {
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(workers.to_string())
        .arg(case)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python3 {case} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The comparisons as JSON (hand-written: the bench crate needs no serde).
pub fn to_json(machine: &str, comparisons: &[Comparison], notes: &[(String, String)]) -> String {
    let mut j = String::new();
    let _ = write!(
        j,
        "{{\n  \"machine\": {},\n  \"comparisons\": [",
        quote(machine)
    );
    for (i, c) in comparisons.iter().enumerate() {
        let _ = write!(
            j,
            "{}\n    {{\"group\": {}, \"name\": {}, \"unit\": {}, \"figures\": [",
            if i > 0 { "," } else { "" },
            quote(&c.group),
            quote(&c.name),
            quote(&c.unit)
        );
        for (k, f) in c.figures.iter().enumerate() {
            let _ = write!(
                j,
                "{}\n      {{\"name\": {}, ",
                if k > 0 { "," } else { "" },
                quote(&f.name)
            );
            match (&f.samples, f.median(), f.min(), f.max()) {
                (Some(s), Some(m), Some(lo), Some(hi)) => {
                    let _ = write!(
                        j,
                        "\"median_ns\": {m:.1}, \"min_ns\": {lo:.1}, \"max_ns\": {hi:.1}, \"samples\": {}}}",
                        s.len()
                    );
                }
                _ => j.push_str("\"skipped\": true}"),
            }
        }
        j.push_str("]}");
    }
    j.push_str("\n  ],\n  \"notes\": {");
    for (i, (k, v)) in notes.iter().enumerate() {
        let _ = write!(
            j,
            "{}\n    {}: {}",
            if i > 0 { "," } else { "" },
            quote(k),
            quote(v)
        );
    }
    j.push_str("\n  }\n}\n");
    j
}

fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// An SVG chart of every comparison: one row per peer, a bar for how many times slower (right,
/// green) or faster (left, red) than futurepool it was, on a log scale.
pub fn to_svg(machine: &str, comparisons: &[Comparison]) -> String {
    let rows: Vec<(String, String, f64)> = comparisons
        .iter()
        .flat_map(|c| {
            let ours = c.figures.first().and_then(Figure::median);
            c.figures.iter().skip(1).filter_map(move |f| {
                let (o, m) = (ours?, f.median()?);
                Some((format!("{} — {}", c.group, c.name), f.name.clone(), m / o))
            })
        })
        .collect();
    let (row_h, left, width) = (22.0, 560.0, 1100.0);
    let height = 70.0 + row_h * rows.len() as f64;
    let center = left + 170.0;
    let per_decade = 110.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">futurepool vs peers: peer time / futurepool time (log scale; right of the line = futurepool faster)</text>\n\
         <text x=\"10\" y=\"38\" fill=\"#555\">{}</text>\n",
        escape(machine)
    );
    let top = 50.0;
    let _ = writeln!(
        svg,
        "<line x1=\"{center}\" y1=\"{top}\" x2=\"{center}\" y2=\"{height}\" stroke=\"#333\"/>"
    );
    for (i, (what, peer, ratio)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64 + 14.0;
        let len = ratio.log10() * per_decade;
        let (x, w, color) = if len >= 0.0 {
            (center, len, "#2a9d4a")
        } else {
            (center + len, -len, "#c0392b")
        };
        let label = format!("{what}: {peer}");
        let label: String = label.chars().take(95).collect();
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{y}\">{}</text><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{y}\">{ratio:.2}×</text>",
            escape(&label),
            y - 11.0,
            w.max(1.0),
            center + len.max(0.0) + 6.0,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
