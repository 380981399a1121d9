//! The figures of a run, as one markdown table (ratios first) plus one
//! machine-readable line per figure.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// The unit of a figure's absolute values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Ns,
    Bytes,
}

impl Unit {
    fn key(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Bytes => "bytes",
        }
    }

    pub(crate) fn show(self, value: f64) -> String {
        match self {
            Unit::Ns if value.abs() < 100.0 => format!("{value:.1} ns"),
            Unit::Ns if value.abs() < 1_000_000.0 => format!("{value:.0} ns"),
            Unit::Ns if value.abs() < 10_000_000.0 => format!("{:.2} ms", value / 1e6),
            Unit::Ns => format!("{:.1} ms", value / 1e6),
            Unit::Bytes if value.abs() < 10_240.0 => format!("{value:.0} B"),
            Unit::Bytes => format!("{:.1} KiB", value / 1024.0),
        }
    }
}

/// A target and whether the run met it.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    /// What the checked value is, for example "project ÷ raw".
    pub(crate) what: String,
    /// The checked value, formatted.
    pub(crate) shown: String,
    /// The target, for example "≤ 1.5×".
    pub(crate) target: String,
    pub(crate) met: bool,
    /// By how much it was missed (empty when met).
    pub(crate) miss: String,
    /// The checked value, for the machine-readable line.
    pub(crate) value: f64,
}

impl Check {
    /// `value ≤ limit` for a ratio.
    pub(crate) fn ratio_at_most(what: &str, value: f64, limit: f64) -> Self {
        Self::at_most(
            what,
            value,
            limit,
            format!("{value:.2}×"),
            format!("≤ {limit}×"),
        )
    }

    /// `value ≤ limit` (or `<` with `strict`) for an absolute figure.
    pub(crate) fn value_at_most(
        what: &str,
        unit: Unit,
        value: f64,
        limit: f64,
        strict: bool,
    ) -> Self {
        let target = format!("{} {}", if strict { "<" } else { "≤" }, unit.show(limit));
        let mut check = Self::at_most(what, value, limit, unit.show(value), target);
        if strict && value >= limit {
            check.met = false;
        }
        check
    }

    fn at_most(what: &str, value: f64, limit: f64, shown: String, target: String) -> Self {
        let met = value <= limit;
        let miss = if met {
            String::new()
        } else {
            format!("missed by {:.0} %", (value / limit - 1.0) * 100.0)
        };
        Self {
            what: what.to_owned(),
            shown,
            target,
            met,
            miss,
            value,
        }
    }

    /// Adds a condition that must also hold (for example zero allocations).
    pub(crate) fn and(mut self, holds: bool, shown: &str, failure: &str) -> Self {
        let _ = write!(self.shown, ", {shown}");
        if !holds {
            self.met = false;
            self.miss = if self.miss.is_empty() {
                failure.to_owned()
            } else {
                format!("{}; {failure}", self.miss)
            };
        }
        self
    }

    fn verdict(&self) -> String {
        if self.met {
            "**met**".to_owned()
        } else {
            format!("**missed** ({})", self.miss)
        }
    }
}

/// One figure of the run.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    /// The machine-readable scenario name.
    pub(crate) scenario: &'static str,
    /// What is measured, for the table.
    pub(crate) title: String,
    pub(crate) n: u64,
    pub(crate) unit: Unit,
    pub(crate) project: f64,
    pub(crate) raw: Option<f64>,
    /// tokio-graceful-shutdown.
    pub(crate) peer: Option<f64>,
    pub(crate) check: Option<Check>,
    /// More `key=value` pairs for the machine-readable line.
    pub(crate) extra: Vec<(&'static str, String)>,
}

impl Figure {
    pub(crate) fn new(
        scenario: &'static str,
        title: impl Into<String>,
        n: u64,
        unit: Unit,
        project: f64,
    ) -> Self {
        Self {
            scenario,
            title: title.into(),
            n,
            unit,
            project,
            raw: None,
            peer: None,
            check: None,
            extra: Vec::new(),
        }
    }

    pub(crate) fn raw(mut self, raw: f64) -> Self {
        self.raw = Some(raw);
        self
    }

    pub(crate) fn peer(mut self, peer: f64) -> Self {
        self.peer = Some(peer);
        self
    }

    pub(crate) fn check(mut self, check: Check) -> Self {
        self.check = Some(check);
        self
    }

    pub(crate) fn extra(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((key, value.into()));
        self
    }

    /// project ÷ raw.
    pub(crate) fn ratio(&self) -> Option<f64> {
        self.raw
            .filter(|raw| *raw > 0.0)
            .map(|raw| self.project / raw)
    }

    /// The machine-readable line.
    pub(crate) fn line(&self) -> String {
        let unit = self.unit.key();
        let optional = |value: Option<f64>, digits: usize| {
            value.map_or_else(|| "NA".to_owned(), |v| format!("{v:.digits$}"))
        };
        let mut line = format!(
            "scenario={} n={} project_{unit}={:.1} raw_{unit}={} ratio={}",
            self.scenario,
            self.n,
            self.project,
            optional(self.raw, 1),
            optional(self.ratio(), 3),
        );
        if let Some(peer) = self.peer {
            let _ = write!(line, " tgs_{unit}={peer:.1}");
            if let Some(raw) = self.raw.filter(|raw| *raw > 0.0) {
                let _ = write!(line, " tgs_ratio={:.3}", peer / raw);
            }
        }
        if let Some(check) = &self.check {
            let _ = write!(
                line,
                " checked={:.3} verdict={}",
                check.value,
                if check.met { "met" } else { "missed" }
            );
        }
        for (key, value) in &self.extra {
            let _ = write!(line, " {key}={value}");
        }
        line
    }
}

/// The header facts of a report.
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) mode: &'static str,
    pub(crate) command: String,
    pub(crate) machine: Vec<String>,
    pub(crate) notes: Vec<String>,
    /// The run recorded in BENCHMARKS.md, to compare this one with.
    pub(crate) recorded: Option<Recorded>,
}

/// The machine-readable lines of a recorded run (BENCHMARKS.md), by
/// scenario and N: the figure compared is the ratio to raw where there is
/// one, else the checked value, else the project's value.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    figures: HashMap<(String, u64), (&'static str, f64)>,
}

impl Recorded {
    /// Reads every `scenario=… n=… …` line of `text`.
    pub(crate) fn parse(text: &str) -> Self {
        let mut figures = HashMap::new();
        for line in text.lines().filter(|line| line.starts_with("scenario=")) {
            let fields: HashMap<&str, &str> = line
                .split_whitespace()
                .filter_map(|field| field.split_once('='))
                .collect();
            let number = |key: &str| fields.get(key).and_then(|value| value.parse::<f64>().ok());
            let (Some(scenario), Some(n)) = (
                fields.get("scenario"),
                fields.get("n").and_then(|n| n.parse().ok()),
            ) else {
                continue;
            };
            let value = number("ratio")
                .map(|ratio| ("project ÷ raw", ratio))
                .or_else(|| number("checked").map(|checked| ("checked", checked)))
                .or_else(|| {
                    fields
                        .iter()
                        .find(|(key, _)| key.starts_with("project_"))
                        .and_then(|(_, value)| value.parse().ok())
                        .map(|project| ("project", project))
                });
            if let Some(value) = value {
                figures.insert(((*scenario).to_owned(), n), value);
            }
        }
        Self { figures }
    }

    /// The recorded figure matching `figure`, and this run's.
    fn compare(&self, figure: &Figure) -> Option<(&'static str, f64, f64)> {
        let (what, recorded) = *self.figures.get(&(figure.scenario.to_owned(), figure.n))?;
        let now = match what {
            "project ÷ raw" => figure.ratio()?,
            "checked" => figure.check.as_ref()?.value,
            _ => figure.project,
        };
        Some((what, recorded, now))
    }
}

/// The whole report as markdown.
pub(crate) fn markdown(header: &Header, figures: &[Figure]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# supervisor benchmarks ({} run)\n", header.mode);
    let _ = writeln!(out, "- command: `{}`", header.command);
    for fact in &header.machine {
        let _ = writeln!(out, "- {fact}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| scenario | N | project ÷ raw | checked figure | target | verdict | project | raw | tokio-graceful-shutdown (÷ raw) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|---|---|---:|---:|---:|");
    for figure in figures {
        let ratio = figure
            .ratio()
            .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×"));
        let (checked, target, verdict) = match &figure.check {
            Some(check) => (
                format!("{} ({})", check.shown, check.what),
                check.target.clone(),
                check.verdict(),
            ),
            None => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        let raw = figure
            .raw
            .map_or_else(|| "—".to_owned(), |v| figure.unit.show(v));
        let peer = match (figure.peer, figure.raw.filter(|raw| *raw > 0.0)) {
            (Some(peer), Some(raw)) => format!("{} ({:.2}×)", figure.unit.show(peer), peer / raw),
            (Some(peer), None) => figure.unit.show(peer),
            (None, _) => "—".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {ratio} | {checked} | {target} | {verdict} | {} | {raw} | {peer} |",
            figure.title,
            figure.n,
            figure.unit.show(figure.project),
        );
    }
    if !header.notes.is_empty() {
        let _ = writeln!(out);
        for note in &header.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    if let Some(recorded) = &header.recorded {
        let rows: Vec<String> = figures
            .iter()
            .filter_map(|figure| {
                let (what, before, now) = recorded.compare(figure)?;
                let show = |value: f64| match what {
                    "project" => figure.unit.show(value),
                    _ => format!("{value:.3}"),
                };
                let change = if before.abs() > f64::EPSILON {
                    format!("{:.2}×", now / before)
                } else {
                    "—".to_owned()
                };
                Some(format!(
                    "| {} | {} | {what} | {} | {} | {change} |",
                    figure.scenario,
                    figure.n,
                    show(before),
                    show(now)
                ))
            })
            .collect();
        if !rows.is_empty() {
            let _ = writeln!(
                out,
                "\n## Against the run recorded in BENCHMARKS.md\n\nSame scenario and N; ratios are within one run, so they compare across runs.\n"
            );
            let _ = writeln!(
                out,
                "| scenario | N | figure | recorded | this run | this ÷ recorded |"
            );
            let _ = writeln!(out, "|---|---:|---|---:|---:|---:|");
            for row in rows {
                let _ = writeln!(out, "{row}");
            }
        }
    }
    let _ = writeln!(out, "\n## Machine-readable\n\n```text");
    for figure in figures {
        let _ = writeln!(out, "{}", figure.line());
    }
    let _ = writeln!(out, "```");
    out
}

/// Writes `text` to `path`, creating its folder.
pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
