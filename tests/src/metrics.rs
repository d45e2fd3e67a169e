//! Reading a node's `/metrics` (Prometheus text exposition format) in tests.
//!
//! Only what the tests need: `name{label="value",…} number` lines, `#` comments skipped, label
//! values with `\"`, `\\` and `\n` escapes. Lookups match a name and a subset of labels, so a
//! test asks for `tierlog_partition_remote_segments{topic="t",partition="0"}` without caring
//! which other labels the broker adds.

use std::collections::BTreeMap;

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// All samples of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Samples in exposition order.
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses exposition text; lines that do not parse are ignored.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Metrics { samples }
    }

    /// The samples named `name` whose labels include every `(key, value)` of `labels`.
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
    }

    /// The value of the single sample matching `name` and `labels`; `None` if there is none.
    /// Several matches are summed (a test asking for a total across unnamed labels).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = false;
        let mut sum = 0.0;
        for s in self.find(name, labels) {
            found = true;
            sum += s.value;
        }
        found.then_some(sum)
    }

    /// A partition gauge (`topic` and `partition` labels).
    pub fn partition(&self, name: &str, topic: &str, partition: i32) -> Option<f64> {
        let partition = partition.to_string();
        self.get(name, &[("topic", topic), ("partition", partition.as_str())])
    }

    /// A counter without labels (or the sum over its labels), 0 when absent: counters that
    /// never moved may legitimately not be exported yet.
    pub fn counter(&self, name: &str) -> f64 {
        self.get(name, &[]).unwrap_or(0.0)
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' ', '\t'])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if rest.starts_with('{') {
        rest = &rest[1..];
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim().to_owned();
            rest = rest[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break i,
                    other => value.push(other),
                }
            };
            rest = &rest[end + 1..];
            labels.insert(key, value);
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_and_values() {
        let m = Metrics::parse(
            "# HELP x y\n# TYPE x gauge\n\
             tierlog_partition_remote_segments{topic=\"a\\\"b\",partition=\"0\"} 12\n\
             tierlog_partition_remote_segments{topic=\"c\",partition=\"1\"} 3 1700000000\n\
             tierlog_tiering_uploaded_segments_total 7\n",
        );
        assert_eq!(
            m.partition("tierlog_partition_remote_segments", "a\"b", 0),
            Some(12.0)
        );
        assert_eq!(m.get("tierlog_partition_remote_segments", &[]), Some(15.0));
        assert_eq!(m.counter("tierlog_tiering_uploaded_segments_total"), 7.0);
        assert_eq!(m.counter("absent_total"), 0.0);
        assert!(
            m.partition("tierlog_partition_remote_segments", "c", 0)
                .is_none()
        );
    }
}
