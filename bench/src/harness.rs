//! The measuring harness: interleaved repetitions, medians, tables and a JSON record.
//!
//! Contenders of one comparison run in turns (A B C A B C …) so that a machine that drifts
//! (another tenant, thermal limits) does not bias one side; each figure is the median of the
//! repetitions after one warm-up round. Each round's peer time divided by ours in the same round
//! is one *pair ratio*; a comparison reports the median pair ratio, its spread (min–max) and in
//! how many pairs we were ahead, so a lead inside the noise shows as one.

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
    /// Nanoseconds per operation, one per round in run order; `None`: skipped.
    pub samples: Option<Vec<f64>>,
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median_of(v: &[f64]) -> f64 {
    let v = sorted(v);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Figure {
    pub fn median(&self) -> Option<f64> {
        self.samples
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(median_of)
    }
    pub fn min(&self) -> Option<f64> {
        self.samples
            .as_deref()
            .and_then(|s| sorted(s).first().copied())
    }
    pub fn max(&self) -> Option<f64> {
        self.samples
            .as_deref()
            .and_then(|s| sorted(s).last().copied())
    }
}

/// A peer against ours over the interleaved rounds: each round's peer time / our time.
#[derive(Clone, Debug)]
pub struct PairRatios {
    /// One ratio per round, in run order; above 1 means we were faster in that round.
    pub ratios: Vec<f64>,
}

impl PairRatios {
    pub fn median(&self) -> f64 {
        median_of(&self.ratios)
    }
    pub fn min(&self) -> f64 {
        sorted(&self.ratios)[0]
    }
    pub fn max(&self) -> f64 {
        *sorted(&self.ratios).last().unwrap()
    }
    /// Rounds in which we were faster.
    pub fn wins(&self) -> usize {
        self.ratios.iter().filter(|r| **r > 1.0).count()
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

impl Comparison {
    /// The pair ratios of `peer` (an index into `figures`) against ours (the first figure);
    /// `None` if either was skipped.
    pub fn pair_ratios(&self, peer: usize) -> Option<PairRatios> {
        let ours = self.figures.first()?.samples.as_ref()?;
        let theirs = self.figures.get(peer)?.samples.as_ref()?;
        let ratios: Vec<f64> = theirs.iter().zip(ours).map(|(t, o)| t / o).collect();
        (!ratios.is_empty()).then_some(PairRatios { ratios })
    }
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
            samples: s,
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

/// Prints a comparison: per contender the median per operation, the rate, the min–max spread,
/// and for each peer its pair ratios to ours (how many times slower the peer was in the same
/// round: above 1 means we were faster): median, min–max, and the rounds we won.
pub fn print_comparison(cmp: &Comparison) {
    println!(
        "\n{} — {} (median per {}, spread min–max; ratio = peer / ours per interleaved round: \
         median [min–max], rounds won)",
        cmp.group, cmp.name, cmp.unit
    );
    for (i, f) in cmp.figures.iter().enumerate() {
        match (f.median(), f.min(), f.max()) {
            (Some(m), Some(lo), Some(hi)) => {
                let ratio = match (i, cmp.pair_ratios(i)) {
                    (0, _) => "    ours".into(),
                    (_, Some(r)) => format!(
                        "{:>6.2}× [{:.2}–{:.2}] {}/{}",
                        r.median(),
                        r.min(),
                        r.max(),
                        r.wins(),
                        r.ratios.len()
                    ),
                    (_, None) => String::new(),
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

/// The comparisons as JSON, through serde_json: per figure the median, min, max and the samples
/// in run order; per peer its pair ratios (median, min, max, rounds won).
pub fn to_json(machine: &str, comparisons: &[Comparison], notes: &[(String, String)]) -> String {
    use serde_json::{json, Map, Value};
    let comparisons: Vec<Value> = comparisons
        .iter()
        .map(|c| {
            let figures: Vec<Value> = c
                .figures
                .iter()
                .enumerate()
                .map(|(i, f)| match (&f.samples, f.median(), f.min(), f.max()) {
                    (Some(s), Some(m), Some(lo), Some(hi)) => {
                        let mut v = json!({
                            "name": f.name,
                            "median_ns": m,
                            "min_ns": lo,
                            "max_ns": hi,
                            "samples_ns": s,
                        });
                        if let (true, Some(r)) = (i > 0, c.pair_ratios(i)) {
                            v["pair_ratio"] = json!({
                                "median": r.median(),
                                "min": r.min(),
                                "max": r.max(),
                                "rounds_won": r.wins(),
                                "rounds": r.ratios.len(),
                                "ratios": r.ratios,
                            });
                        }
                        v
                    }
                    _ => json!({ "name": f.name, "skipped": true }),
                })
                .collect();
            json!({ "group": c.group, "name": c.name, "unit": c.unit, "figures": figures })
        })
        .collect();
    let notes: Map<String, Value> = notes
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut text = serde_json::to_string_pretty(&json!({
        "machine": machine,
        "comparisons": comparisons,
        "notes": notes,
    }))
    .expect("plain JSON values serialize");
    text.push('\n');
    text
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
