//! Snapshot progress, shared by every source: per table its rows, rate
//! and ETA, redrawn as bars on an interactive terminal and logged as
//! `snapshot progress` lines otherwise.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One table's snapshot progress: written by whoever reads the table,
/// read by the display.
#[derive(Debug)]
pub struct TableProgress {
    /// `schema.table` (`db.table`).
    pub name: String,
    /// Estimated rows, if known (the ETA needs it).
    pub estimate: Option<u64>,
    rows: AtomicU64,
    started: Mutex<Option<Instant>>,
    finished: Mutex<Option<Instant>>,
}

impl TableProgress {
    /// A table not started yet.
    pub fn new(name: impl Into<String>, estimate: Option<u64>) -> Self {
        Self {
            name: name.into(),
            estimate,
            rows: AtomicU64::new(0),
            started: Mutex::new(None),
            finished: Mutex::new(None),
        }
    }

    /// Reading began (the first call counts).
    pub fn start(&self) {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(Instant::now);
    }

    /// `n` more rows written.
    pub fn add(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }

    /// Every row written.
    pub fn finish(&self) {
        *self.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    fn times(&self) -> (Option<Instant>, Option<Instant>) {
        (
            *self.started.lock().unwrap_or_else(|e| e.into_inner()),
            *self.finished.lock().unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Rows per second since `begun`, and the seconds left if the size
    /// is known.
    fn rate_eta(&self, begun: Instant) -> (u64, Option<u64>) {
        let secs = begun.elapsed().as_secs_f64().max(0.001);
        let rows = self.rows();
        let rate = rows as f64 / secs;
        let eta = self
            .estimate
            .filter(|_| rate > 0.0)
            .map(|e| (e.saturating_sub(rows) as f64 / rate) as u64);
        (rate as u64, eta)
    }
}

/// A snapshot's progress output: redrawn bars on a terminal (every 250
/// ms), log lines otherwise (every `log_every`).
#[derive(Debug)]
pub struct SnapshotProgress {
    source: String,
    tables: Vec<Arc<TableProgress>>,
    tty: bool,
    drawn: usize,
    every: Duration,
    started: Instant,
    shown: Instant,
}

impl SnapshotProgress {
    /// Progress of `tables` of source `source`.
    pub fn new(source: &str, tables: Vec<Arc<TableProgress>>, log_every: Duration) -> Self {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Self {
            source: source.to_string(),
            tables,
            tty,
            drawn: 0,
            every: if tty {
                Duration::from_millis(250)
            } else {
                log_every
            },
            started: Instant::now(),
            shown: Instant::now(),
        }
    }

    /// How often [`show`](Self::show) should be called.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Shows progress if [`every`](Self::every) passed since it was last
    /// shown (for readers that poll it between rows).
    pub fn show_if_due(&mut self) {
        if self.shown.elapsed() >= self.every {
            self.show();
        }
    }

    /// Shows the tables being read.
    pub fn show(&mut self) {
        self.shown = Instant::now();
        if self.tty {
            self.draw();
            return;
        }
        for t in &self.tables {
            if let (Some(begun), None) = t.times() {
                let (rate, eta) = t.rate_eta(begun);
                tracing::info!(
                    source = %self.source,
                    table = %t.name,
                    rows = t.rows(),
                    estimated_rows = t.estimate.unwrap_or(0),
                    rows_per_s = rate,
                    eta_s = eta.unwrap_or(0),
                    elapsed_s = self.started.elapsed().as_secs(),
                    "snapshot progress"
                );
            }
        }
    }

    fn draw(&mut self) {
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for t in &self.tables {
            out.push_str(&bar_line(t));
        }
        self.drawn = self.tables.len();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }

    /// The snapshot ended: the last drawing, and its totals logged.
    pub fn finish(&mut self) {
        if self.tty {
            self.draw();
        }
        let rows: u64 = self.tables.iter().map(|t| t.rows()).sum();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        tracing::info!(
            source = %self.source,
            tables = self.tables.len(),
            rows,
            rows_per_s = (rows as f64 / secs) as u64,
            secs,
            "snapshot read"
        );
    }
}

/// One table's line on a terminal: name, bar, rows, rate and ETA.
fn bar_line(t: &TableProgress) -> String {
    let (begun, finished) = t.times();
    let rows = t.rows();
    let frac = match (finished, t.estimate) {
        (Some(_), _) => 1.0,
        (None, Some(e)) if e > 0 => (rows as f64 / e as f64).min(0.99),
        _ => 0.0,
    };
    let filled = (frac * 30.0) as usize;
    let bar = format!("{}{}", "#".repeat(filled), "-".repeat(30 - filled));
    let status = match (begun, finished) {
        (None, _) => "waiting".to_string(),
        (Some(b), Some(f)) => {
            let secs = f.duration_since(b).as_secs_f64().max(0.001);
            format!("done in {secs:.1}s, {} rows/s", (rows as f64 / secs) as u64)
        }
        (Some(b), None) => match t.rate_eta(b) {
            (rate, Some(eta)) => format!("{rate} rows/s, ETA {eta}s"),
            (rate, None) => format!("{rate} rows/s"),
        },
    };
    let of = t.estimate.map(|e| format!("/~{e}")).unwrap_or_default();
    format!("\x1b[2K{} [{bar}] {rows}{of} rows, {status}\n", t.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_where_a_table_stands() {
        let t = TableProgress::new("public.items", Some(1000));
        assert!(
            bar_line(&t)
                .contains("public.items [------------------------------] 0/~1000 rows, waiting")
        );
        t.start();
        t.add(500);
        let line = bar_line(&t);
        assert!(
            line.contains("[###############---------------] 500/~1000 rows"),
            "{line}"
        );
        assert!(line.contains("rows/s"), "{line}");
        t.finish();
        let line = bar_line(&t);
        assert!(
            line.contains(&format!("[{}] 500/~1000 rows, done in", "#".repeat(30))),
            "{line}"
        );
        let unknown = TableProgress::new("db.t", None);
        unknown.start();
        unknown.add(7);
        assert!(
            bar_line(&unknown).contains("] 7 rows, "),
            "{}",
            bar_line(&unknown)
        );
    }
}
