//! [`TimestampIncrementer`]: a parameters incrementer that gives each new instance the
//! current time, registered as `timestampIncrementer` (Surfin Batch's name for it).

use chrono::Utc;

use ikkatsu_core::job::JobParametersIncrementer;
use ikkatsu_core::{JobParameters, ParameterValue};

/// Sets the identifying integer parameter `name` (default `timestamp`) to the current time
/// in milliseconds since 1970, and always above the previous instance's value, so that
/// every run it is asked for is a new job instance.
#[derive(Debug, Clone)]
pub struct TimestampIncrementer {
    name: String,
}

impl TimestampIncrementer {
    /// The incrementer of the parameter `name`.
    pub fn new(name: impl Into<String>) -> Self {
        TimestampIncrementer { name: name.into() }
    }
}

impl Default for TimestampIncrementer {
    fn default() -> Self {
        TimestampIncrementer::new("timestamp")
    }
}

impl JobParametersIncrementer for TimestampIncrementer {
    fn next(&self, previous: &JobParameters) -> JobParameters {
        let last = match previous.get(&self.name).map(|p| &p.value) {
            Some(ParameterValue::Integer(n)) => *n,
            _ => i64::MIN,
        };
        let now = Utc::now().timestamp_millis().max(last.saturating_add(1));
        let mut next = previous.clone();
        next.insert(self.name.clone(), ParameterValue::Integer(now), true);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_next_instance_gets_a_later_time() {
        let incrementer = TimestampIncrementer::default();
        let before = Utc::now().timestamp_millis();
        let first = incrementer.next(&JobParameters::new());
        let Some(ParameterValue::Integer(t1)) = first.get("timestamp").map(|p| p.value.clone())
        else {
            panic!("no timestamp in {first:?}");
        };
        assert!(t1 >= before);
        let second = incrementer.next(&first);
        let Some(ParameterValue::Integer(t2)) = second.get("timestamp").map(|p| p.value.clone())
        else {
            panic!("no timestamp in {second:?}");
        };
        assert!(t2 > t1, "{t2} after {t1}");
        assert_ne!(first.job_key(), second.job_key());
    }
}
