//! When the cache checks its artifacts again: every interval, or on a cron
//! schedule (5 fields, or 6 with seconds first; times in UTC).

use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use croner::Cron;

#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<Cron>),
}

#[derive(Debug, Clone)]
pub struct Refresh {
    pub schedule: Schedule,
    /// Reload even when the artifact did not change.
    pub force: bool,
}

impl Refresh {
    pub fn every(interval: Duration) -> Self {
        Refresh { schedule: Schedule::Every(interval), force: false }
    }

    pub fn cron(pattern: &str) -> Result<Self, String> {
        let cron = Cron::from_str(pattern).map_err(|e| format!("bad cron pattern '{pattern}': {e}"))?;
        Ok(Refresh { schedule: Schedule::Cron(Box::new(cron)), force: false })
    }

    /// How long until the next refresh is due.
    pub fn next_wait(&self) -> Duration {
        match &self.schedule {
            Schedule::Every(d) => (*d).max(Duration::from_millis(10)),
            Schedule::Cron(cron) => {
                let now = Utc::now();
                match cron.find_next_occurrence(&now, false) {
                    Ok(next) => (next - now).to_std().unwrap_or(Duration::from_secs(1)),
                    Err(_) => Duration::from_secs(3600),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_and_interval() {
        assert_eq!(Refresh::every(Duration::from_secs(5)).next_wait(), Duration::from_secs(5));
        let every_minute = Refresh::cron("* * * * *").unwrap();
        assert!(every_minute.next_wait() <= Duration::from_secs(60));
        let every_second = Refresh::cron("* * * * * *").unwrap();
        assert!(every_second.next_wait() <= Duration::from_secs(1));
        assert!(Refresh::cron("not a cron").is_err());
    }
}
