//! A strict parser of the Prometheus text exposition format 0.0.4, written for the tests so a
//! scrape is checked against the format's rules rather than against our own writer: names and
//! label syntax, escapes, one HELP and one TYPE per family before its samples, families
//! contiguous, no duplicate series, counters finite and non-negative, histograms with
//! ascending `le`, cumulative buckets, a `+Inf` bucket equal to `_count`, and `_sum`.

use std::collections::{BTreeMap, BTreeSet};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Full sample name (with `_bucket`/`_sum`/`_count` for histograms).
    pub name: String,
    /// Label names to values.
    pub labels: BTreeMap<String, String>,
    /// The sample's value.
    pub value: f64,
}

/// One metric family.
#[derive(Debug, Clone)]
pub struct Family {
    /// Family name.
    pub name: String,
    /// Help text (unescaped).
    pub help: String,
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    /// Its samples, in order.
    pub samples: Vec<Sample>,
}

impl Family {
    /// Samples whose labels include every `(k, v)` given.
    pub fn with(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }
}

/// Parses a whole document; any violation is an error naming the line.
pub fn parse(text: &str) -> Result<BTreeMap<String, Family>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("document does not end with a newline".into());
    }
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut seen_series: BTreeSet<String> = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest
                .split_once(' ')
                .ok_or_else(|| at("bad comment".into()))?;
            let (name, arg) = rest
                .split_once(' ')
                .ok_or_else(|| at("missing argument".into()))?;
            check_name(name, true).map_err(at)?;
            if current.as_deref() != Some(name) {
                if let Some(c) = current.take() {
                    closed.insert(c);
                }
                if closed.contains(name) {
                    return Err(at(format!("family {name} is not contiguous")));
                }
                current = Some(name.to_owned());
            }
            let fam = families.entry(name.to_owned()).or_insert_with(|| Family {
                name: name.to_owned(),
                help: String::new(),
                kind: String::new(),
                samples: Vec::new(),
            });
            if !fam.samples.is_empty() {
                return Err(at("HELP/TYPE after samples".into()));
            }
            match keyword {
                "HELP" if fam.help.is_empty() => fam.help = unescape(arg, false).map_err(at)?,
                "TYPE" if fam.kind.is_empty() => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                        return Err(at(format!("unknown type {arg}")));
                    }
                    fam.kind = arg.to_owned();
                }
                "HELP" | "TYPE" => return Err(at(format!("second {keyword}"))),
                _ => return Err(at("unexpected comment".into())),
            }
            continue;
        }
        let sample = parse_sample(line).map_err(at)?;
        let fam_name = current
            .clone()
            .ok_or_else(|| at("sample before any TYPE".into()))?;
        let fam = families
            .get_mut(&fam_name)
            .ok_or_else(|| at("no family".into()))?;
        if fam.kind.is_empty() || fam.help.is_empty() {
            return Err(at("sample before its HELP and TYPE".into()));
        }
        let allowed: Vec<String> = match fam.kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{fam_name}{s}"))
                .collect(),
            _ => vec![fam_name.clone()],
        };
        if !allowed.contains(&sample.name) {
            return Err(at(format!(
                "sample {} does not belong to family {fam_name}",
                sample.name
            )));
        }
        if fam.kind == "counter" && !(sample.value.is_finite() && sample.value >= 0.0) {
            return Err(at("counter must be finite and >= 0".into()));
        }
        let key = format!("{}{:?}", sample.name, sample.labels);
        if !seen_series.insert(key) {
            return Err(at("duplicate series".into()));
        }
        fam.samples.push(sample);
    }
    for fam in families.values() {
        if fam.kind.is_empty() || fam.help.is_empty() {
            return Err(format!("family {} lacks HELP or TYPE", fam.name));
        }
        if fam.kind == "histogram" {
            check_histogram(fam)?;
        }
    }
    Ok(families)
}

/// Bucket rules of one histogram family, per label set (without `le`).
fn check_histogram(fam: &Family) -> Result<(), String> {
    let mut groups: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
    for s in &fam.samples {
        let mut base = s.labels.clone();
        base.remove("le");
        groups.entry(format!("{base:?}")).or_default().push(s);
    }
    for (labels, samples) in groups {
        let name = &fam.name;
        let buckets: Vec<&&Sample> = samples
            .iter()
            .filter(|s| s.name.ends_with("_bucket"))
            .collect();
        let count = samples.iter().find(|s| s.name == format!("{name}_count"));
        let sum = samples.iter().find(|s| s.name == format!("{name}_sum"));
        let (Some(count), Some(_sum)) = (count, sum) else {
            return Err(format!("{name}{labels}: missing _sum or _count"));
        };
        let mut prev_le = f64::NEG_INFINITY;
        let mut prev_count = 0.0;
        for b in &buckets {
            let le = b
                .labels
                .get("le")
                .ok_or_else(|| format!("{name}{labels}: bucket without le"))?;
            let le = parse_value(le)?;
            if le <= prev_le {
                return Err(format!("{name}{labels}: le not ascending"));
            }
            if b.value < prev_count {
                return Err(format!("{name}{labels}: buckets not cumulative"));
            }
            prev_le = le;
            prev_count = b.value;
        }
        if prev_le != f64::INFINITY {
            return Err(format!("{name}{labels}: no +Inf bucket"));
        }
        if prev_count != count.value {
            return Err(format!("{name}{labels}: +Inf bucket != _count"));
        }
    }
    Ok(())
}

/// `name{labels} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_name(name, true)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let mut end = None;
        while let Some(&(i, c)) = chars.peek() {
            if c == '}' {
                end = Some(i + 1);
                break;
            }
            let key_start = i;
            while chars.peek().is_some_and(|(_, c)| *c != '=') {
                chars.next();
            }
            let (eq, _) = chars.next().ok_or("label without =")?;
            let key = &after[key_start..eq];
            check_name(key, false)?;
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut raw = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")? {
                    (_, '\\') => {
                        raw.push('\\');
                        raw.push(chars.next().ok_or("dangling escape")?.1);
                    }
                    (_, '"') => break,
                    (_, c) => raw.push(c),
                }
            }
            if labels
                .insert(key.to_owned(), unescape(&raw, true)?)
                .is_some()
            {
                return Err(format!("label {key} repeated"));
            }
            match chars.peek() {
                Some((_, ',')) => {
                    chars.next();
                }
                Some((_, '}')) => {}
                _ => return Err("expected , or } after label".into()),
            }
        }
        let end = end.ok_or("unterminated label set")?;
        rest = &after[end..];
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before value")?;
    let mut parts = rest.split(' ');
    let value = parse_value(parts.next().ok_or("no value")?)?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// A metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or label name (no colons, not `__` reserved).
fn check_name(name: &str, metric: bool) -> Result<(), String> {
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (metric && c == ':');
    let ok_rest = |c: char| ok_first(c) || c.is_ascii_digit();
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if ok_first(c) && chars.all(ok_rest) => {}
        _ => return Err(format!("invalid name {name:?}")),
    }
    if !metric && name.starts_with("__") {
        return Err(format!("reserved label name {name:?}"));
    }
    Ok(())
}

/// Undoes `\\`, `\n` and (in label values) `\"`; any other escape is an error.
fn unescape(s: &str, label: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if label => out.push('"'),
            other => return Err(format!("bad escape \\{other:?}")),
        }
    }
    Ok(out)
}

/// A sample value: Go float syntax or `+Inf`/`-Inf`/`NaN`.
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|_| format!("bad value {s:?}")),
    }
}

#[test]
fn the_parser_rejects_malformed_documents() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\\\"\"} 1\n";
    assert_eq!(
        parse(ok).map(|f| f["a_total"].samples[0].labels["k"].clone()),
        Ok("v\"".into())
    );
    let bad = [
        "# TYPE a_total counter\na_total 1\n", // no HELP
        "# HELP a_total x\n# TYPE a_total counter\na_total -1\n", // negative counter
        "# HELP a x\n# TYPE a gauge\na 1\na 2\n", // duplicate series
        "# HELP a x\n# TYPE a gauge\na{k=v} 1\n", // unquoted label
        "# HELP a x\n# TYPE a gauge\nb 1\n",   // foreign sample
        "# HELP a x\n# TYPE a gauge\na 1",     // no final newline
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", // no +Inf
        "# HELP a x\n# TYPE a gauge\na 1\n# HELP b x\n# TYPE b gauge\nb 1\n# HELP a x\n",
    ];
    for doc in bad {
        assert!(parse(doc).is_err(), "accepted: {doc:?}");
    }
}
