//! Figures and how they are printed: each measurement's per-round values and their median, its
//! same-command baseline and the ratio, p50/p99 where latency matters, and the target.

use std::fmt::Write;

use serde_json::{Value, json};

/// One measured series (per-round values) with optional per-round latency quantiles.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub label: String,
    pub rounds: Vec<f64>,
    pub p50_ms: Vec<f64>,
    pub p99_ms: Vec<f64>,
}

impl Series {
    pub fn new(label: impl Into<String>) -> Series {
        Series {
            label: label.into(),
            ..Series::default()
        }
    }

    pub fn median(&self) -> f64 {
        median(&self.rounds)
    }
}

pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

/// A target from the issue, judged on the medians.
#[derive(Debug, Clone)]
pub struct Target {
    pub text: String,
    pub met: bool,
}

#[derive(Debug, Clone)]
pub struct Figure {
    /// Stable key for `--json` (`push`, `pull_head`, `pull_page`, `snapshot_build`, …).
    pub key: &'static str,
    pub title: String,
    pub unit: &'static str,
    pub measured: Series,
    pub baseline: Option<Series>,
    pub target: Option<Target>,
    pub notes: Vec<String>,
}

impl Figure {
    pub fn ratio(&self) -> Option<f64> {
        self.baseline
            .as_ref()
            .map(|b| self.measured.median() / b.median())
            .filter(|r| r.is_finite())
    }
}

/// What was measured against what, and the machine's load around it.
#[derive(Debug, Clone)]
pub struct Header {
    pub target: String,
    pub in_process: bool,
    pub rounds: usize,
    pub duration_secs: f64,
    pub devices: usize,
    pub pollers: usize,
    pub load_before: Option<[f64; 3]>,
    pub load_after: Option<[f64; 3]>,
}

/// The 1, 5 and 15 minute load averages (Linux).
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// `12345.6` → `12,346`; small values keep significant digits.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    if x.abs() >= 1000.0 {
        let s = format!("{:.0}", x.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if x < 0.0 { format!("-{out}") } else { out }
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// A count: `10,000`, `40`.
pub fn count(n: usize) -> String {
    if n >= 1000 {
        num(n as f64)
    } else {
        n.to_string()
    }
}

fn quantiles(s: &Series) -> String {
    if s.p50_ms.is_empty() {
        return String::new();
    }
    format!(
        "   p50 {} ms, p99 {} ms",
        num(median(&s.p50_ms)),
        num(median(&s.p99_ms))
    )
}

fn rounds(s: &Series) -> String {
    let list: Vec<String> = s.rounds.iter().map(|x| num(*x)).collect();
    format!("   [rounds: {}]", list.join(" "))
}

pub fn text(header: &Header, figures: &[Figure]) -> String {
    let mut out = String::new();
    let load = |l: Option<[f64; 3]>| l.map_or("?".into(), |l| format!("{:.2}", l[0]));
    let _ = writeln!(
        out,
        "tdsync bench — {} ({}), medians of {} round(s) of {} s; load average {} → {}",
        header.target,
        if header.in_process {
            "in-process tdsync"
        } else {
            "remote server"
        },
        header.rounds,
        header.duration_secs,
        load(header.load_before),
        load(header.load_after),
    );
    for f in figures {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", f.title);
        let m = &f.measured;
        let _ = writeln!(
            out,
            "  measured   {:>12} {:<9}{}{}",
            num(m.median()),
            f.unit,
            quantiles(m),
            rounds(m)
        );
        let _ = writeln!(out, "             {}", m.label);
        if let Some(b) = &f.baseline {
            let _ = writeln!(
                out,
                "  baseline   {:>12} {:<9}{}{}",
                num(b.median()),
                f.unit,
                quantiles(b),
                rounds(b)
            );
            let _ = writeln!(out, "             {}", b.label);
        }
        if let Some(r) = f.ratio() {
            let _ = writeln!(out, "  ratio      {r:>12.2}");
        }
        if let Some(t) = &f.target {
            let verdict = if t.met { "met" } else { "NOT met" };
            let _ = writeln!(out, "  target     {} — {verdict}", t.text);
        }
        for n in &f.notes {
            let _ = writeln!(out, "  note       {n}");
        }
    }
    out
}

fn series_json(s: &Series) -> Value {
    let mut v = json!({
        "label": s.label,
        "median": s.median(),
        "rounds": s.rounds,
    });
    if !s.p50_ms.is_empty() {
        v["p50_ms"] = json!(median(&s.p50_ms));
        v["p99_ms"] = json!(median(&s.p99_ms));
        v["rounds_p50_ms"] = json!(s.p50_ms);
        v["rounds_p99_ms"] = json!(s.p99_ms);
    }
    v
}

pub fn json(header: &Header, figures: &[Figure]) -> Value {
    json!({
        "target": header.target,
        "in_process": header.in_process,
        "rounds": header.rounds,
        "duration_secs": header.duration_secs,
        "devices": header.devices,
        "pollers": header.pollers,
        "load_average_before": header.load_before,
        "load_average_after": header.load_after,
        "measurements": figures.iter().map(|f| json!({
            "name": f.key,
            "title": f.title,
            "unit": f.unit,
            "measured": series_json(&f.measured),
            "baseline": f.baseline.as_ref().map(series_json),
            "ratio": f.ratio(),
            "target": f.target.as_ref().map(|t| json!({"text": t.text, "met": t.met})),
            "notes": f.notes,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_medians() {
        assert_eq!(num(23_508.4), "23,508");
        assert_eq!(num(1_234_567.0), "1,234,567");
        assert_eq!(num(3.987), "3.99");
        assert_eq!(num(0.16), "0.160");
        assert_eq!(count(40), "40");
        assert_eq!(count(10_000), "10,000");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
