//! The run's policies, as GNU parallel 20221122 spells and computes them: how many jobs run at
//! once (`-j N|+N|-N|N%|0`) and when to stop (`--halt`), with the exit code rule.
//!
//! Exit code (GNU parallel's `halt()` and `should_we_halt()`): the number of failed jobs, at
//! most 101; with `--halt …,fail=1` (or `done=1`) that triggered, the failing job's own code
//! (128 + signal if it was killed); with a percentage, the percentage of jobs that failed
//! (rounded up); with `--halt …,success=N` that triggered, 0. An interrupted run exits 255.

use std::fmt;

/// A `-j` or `--halt` value we cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

/// `-j`: how many jobs run at once, before the number of cores is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    /// `N`
    Exactly(usize),
    /// `+N`: cores + N.
    MoreThanCores(usize),
    /// `-N`: cores − N, at least 1.
    FewerThanCores(usize),
    /// `N%`: N percent of the cores, at least 1.
    PercentOfCores(usize),
    /// `0`: as many as the file-descriptor limit allows.
    AsManyAsPossible,
}

impl Jobs {
    /// Parses GNU parallel's `-j` forms.
    pub fn parse(s: &str) -> Result<Jobs, PolicyError> {
        let bad = || {
            PolicyError(format!(
                "`-j {s}`: expected N, +N, -N, N% or 0 (GNU parallel's forms)"
            ))
        };
        let number = |t: &str| t.parse::<usize>().map_err(|_| bad());
        if let Some(n) = s.strip_prefix('+') {
            Ok(Jobs::MoreThanCores(number(n)?))
        } else if let Some(n) = s.strip_prefix('-') {
            Ok(Jobs::FewerThanCores(number(n)?))
        } else if let Some(n) = s.strip_suffix('%') {
            match number(n)? {
                0 => Err(bad()),
                n => Ok(Jobs::PercentOfCores(n)),
            }
        } else {
            match number(s)? {
                0 => Ok(Jobs::AsManyAsPossible),
                n => Ok(Jobs::Exactly(n)),
            }
        }
    }

    /// The number of job slots on a machine with `cores` CPU threads, where at most
    /// `max_possible` jobs can be open at once.
    pub fn slots(self, cores: usize, max_possible: usize) -> usize {
        let n = match self {
            Jobs::Exactly(n) => n,
            Jobs::MoreThanCores(n) => cores.saturating_add(n),
            Jobs::FewerThanCores(n) => cores.saturating_sub(n),
            Jobs::PercentOfCores(p) => cores.saturating_mul(p) / 100,
            Jobs::AsManyAsPossible => max_possible,
        };
        n.clamp(1, max_possible.max(1))
    }
}

/// `--halt` timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Start no new jobs, let the running ones finish.
    Soon,
    /// Kill the running jobs too.
    Now,
}

/// What `--halt` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Fail,
    Success,
    Done,
}

/// `--halt`'s threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Threshold {
    Count(usize),
    /// Percent of all jobs.
    Percent(usize),
}

/// A `--halt` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Halt {
    when: When,
    counted: Counted,
    threshold: Threshold,
}

impl Halt {
    /// Parses `never`, `now|soon,fail|success|done=N|N%`, and GNU's short forms `0`, `1`, `2`,
    /// `-1`, `-2`, `N%`. `never` is `None`.
    pub fn parse(s: &str) -> Result<Option<Halt>, PolicyError> {
        let bad = || {
            PolicyError(format!(
                "`--halt {s}`: expected never or now|soon,fail|success|done=N|N%"
            ))
        };
        let long = match s {
            "0" | "never" => return Ok(None),
            "1" => "soon,fail=1".to_string(),
            "2" => "now,fail=1".to_string(),
            "-1" => "soon,success=1".to_string(),
            "-2" => "now,success=1".to_string(),
            s if s.ends_with('%') && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit()) => {
                format!("soon,fail={s}")
            }
            s => s.to_string(),
        };
        let (when, rule) = long.split_once(',').ok_or_else(bad)?;
        let when = match when {
            "now" => When::Now,
            "soon" => When::Soon,
            _ => return Err(bad()),
        };
        let (counted, n) = rule.split_once('=').ok_or_else(bad)?;
        let counted = match counted {
            "fail" => Counted::Fail,
            "success" => Counted::Success,
            "done" => Counted::Done,
            _ => return Err(bad()),
        };
        let threshold = match n.strip_suffix('%') {
            Some(p) => Threshold::Percent(p.parse().map_err(|_| bad())?),
            None => Threshold::Count(n.parse().map_err(|_| bad())?),
        };
        if matches!(threshold, Threshold::Count(0) | Threshold::Percent(0))
            || matches!(threshold, Threshold::Percent(p) if p > 100)
        {
            return Err(bad());
        }
        Ok(Some(Halt {
            when,
            counted,
            threshold,
        }))
    }

    /// Whether the policy needs the number of jobs before the first one starts.
    pub fn needs_total(&self) -> bool {
        matches!(self.threshold, Threshold::Percent(_))
    }
}

/// How a finished job ended, as the exit code rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub exit: i32,
    pub signal: i32,
}

impl Ending {
    pub fn failed(self) -> bool {
        self.exit != 0 || self.signal != 0
    }
}

/// Counts finished jobs and decides when to halt and what to exit with.
#[derive(Debug)]
pub struct Tally {
    halt: Option<Halt>,
    total: Option<usize>,
    started: usize,
    completed: usize,
    failed: usize,
    /// Set when the halt policy triggered: the exit code it fixed.
    halted: Option<u8>,
}

impl Tally {
    pub fn new(halt: Option<Halt>, total: Option<usize>) -> Tally {
        Tally {
            halt,
            total,
            started: 0,
            completed: 0,
            failed: 0,
            halted: None,
        }
    }

    /// A job started (retries are not new jobs).
    pub fn started(&mut self) {
        self.started += 1;
    }

    /// Jobs started (retries are not counted again).
    pub fn started_count(&self) -> usize {
        self.started
    }

    pub fn failed_count(&self) -> usize {
        self.failed
    }

    /// Records a finished job; returns when to halt if this job triggers the policy.
    pub fn finished(&mut self, ending: Ending) -> Option<When> {
        self.completed += 1;
        if ending.failed() {
            self.failed += 1;
        }
        let halt = self.halt?;
        if self.halted.is_some() {
            return None;
        }
        let reached = match halt.counted {
            Counted::Fail if ending.failed() => self.failed,
            Counted::Success if !ending.failed() => self.completed - self.failed,
            Counted::Done => self.completed,
            _ => return None,
        };
        let needed = match halt.threshold {
            Threshold::Count(n) => n as f64,
            Threshold::Percent(p) => self.total.unwrap_or(self.started) as f64 * p as f64 / 100.0,
        };
        if (reached as f64) < needed {
            return None;
        }
        let code = match (halt.counted, halt.threshold) {
            (Counted::Success, _) => 0,
            (_, Threshold::Count(1)) => {
                if ending.exit != 0 {
                    // As exit(2) truncates it: -1 (a timed-out job) is 255.
                    (ending.exit & 0xff) as u8
                } else if ending.signal != 0 {
                    (ending.signal + 128).clamp(0, 255) as u8
                } else {
                    0
                }
            }
            (_, Threshold::Count(_)) => self.failed.min(101) as u8,
            (_, Threshold::Percent(_)) => self.percent_failed(self.total.unwrap_or(self.started)),
        };
        self.halted = Some(code);
        Some(halt.when)
    }

    fn percent_failed(&self, of: usize) -> u8 {
        (self.failed * 100).div_ceil(of.max(1)).min(255) as u8
    }

    /// The exit code of a run that was not interrupted.
    pub fn exit_code(&self) -> u8 {
        if let Some(code) = self.halted {
            return code;
        }
        match self.halt.map(|h| h.threshold) {
            Some(Threshold::Percent(_)) => self.percent_failed(self.started),
            _ => self.failed.min(101) as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Ending = Ending { exit: 0, signal: 0 };

    fn exit(code: i32) -> Ending {
        Ending {
            exit: code,
            signal: 0,
        }
    }

    #[test]
    fn jobs_forms() {
        assert_eq!(Jobs::parse("4").unwrap().slots(2, 1000), 4);
        assert_eq!(Jobs::parse("+1").unwrap().slots(2, 1000), 3);
        assert_eq!(Jobs::parse("-1").unwrap().slots(2, 1000), 1);
        assert_eq!(Jobs::parse("-5").unwrap().slots(2, 1000), 1);
        assert_eq!(Jobs::parse("200%").unwrap().slots(2, 1000), 4);
        assert_eq!(Jobs::parse("50%").unwrap().slots(2, 1000), 1);
        assert_eq!(Jobs::parse("0").unwrap().slots(2, 250), 250);
        for bad in ["", "x", "0%", "1.5", "+", "%"] {
            assert!(Jobs::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn halt_forms() {
        assert_eq!(Halt::parse("never"), Ok(None));
        assert_eq!(Halt::parse("2"), Halt::parse("now,fail=1"));
        assert_eq!(Halt::parse("20%"), Halt::parse("soon,fail=20%"));
        assert!(Halt::parse("now,success=2").unwrap().is_some());
        for bad in [
            "later,fail=1",
            "now,fail=0",
            "now",
            "now,fail",
            "now,oops=1",
            "soon,fail=101%",
        ] {
            assert!(Halt::parse(bad).is_err(), "{bad}");
        }
    }

    /// `parallel -j1 --halt now,fail=1 'exit {}' ::: 0 3 0 0` exits 3.
    #[test]
    fn fail_1_exits_with_the_jobs_code() {
        let mut t = Tally::new(Halt::parse("now,fail=1").unwrap(), Some(4));
        assert_eq!(t.finished(OK), None);
        assert_eq!(t.finished(exit(3)), Some(When::Now));
        assert_eq!(t.exit_code(), 3);
        let mut t = Tally::new(Halt::parse("soon,fail=1").unwrap(), None);
        t.finished(Ending { exit: 0, signal: 9 });
        assert_eq!(t.exit_code(), 137);
        // `parallel --halt now,fail=1 --timeout 0.5 sleep ::: 5` exits 255 (joblog: -1, 15).
        let mut t = Tally::new(Halt::parse("now,fail=1").unwrap(), None);
        t.finished(Ending {
            exit: -1,
            signal: 15,
        });
        assert_eq!(t.exit_code(), 255);
    }

    /// `parallel -j1 --halt soon,fail=2 …` exits 2; `fail=20%` with 1 of 10 failing exits 10.
    #[test]
    fn counts_and_percentages() {
        let mut t = Tally::new(Halt::parse("soon,fail=2").unwrap(), None);
        assert_eq!(t.finished(exit(3)), None);
        assert_eq!(t.finished(exit(4)), Some(When::Soon));
        assert_eq!(t.exit_code(), 2);

        let mut t = Tally::new(Halt::parse("soon,fail=20%").unwrap(), Some(10));
        for i in 0..10 {
            t.started();
            assert_eq!(t.finished(if i == 4 { exit(3) } else { OK }), None);
        }
        assert_eq!(t.exit_code(), 10);

        let mut t = Tally::new(Halt::parse("now,success=1").unwrap(), None);
        assert_eq!(t.finished(exit(3)), None);
        assert_eq!(t.finished(OK), Some(When::Now));
        assert_eq!(t.exit_code(), 0);

        let mut t = Tally::new(None, None);
        for _ in 0..150 {
            t.finished(exit(1));
        }
        assert_eq!(t.exit_code(), 101);
    }
}
