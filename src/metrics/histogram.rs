//! A fixed-bucket Prometheus histogram: cumulative counts per upper bound, a sum and a count.
//! Plain data guarded by the owner's lock; rendering lives in [`super::exposition`].

/// Upper bounds (seconds) for latency-like histograms: from 5 ms (the proxy's own overhead) up
/// to 5 min (a long reasoning stream).
pub const LATENCY_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// One histogram series.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Upper bounds, ascending; `+Inf` is implicit.
    bounds: &'static [f64],
    /// Observations falling at or below each bound (non-cumulative; summed when rendered).
    counts: Vec<u64>,
    /// Sum of every observed value.
    sum: f64,
    /// Number of observations (the `+Inf` bucket).
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Records one value; NaN and negative values (clock skew) are clamped to 0.
    pub fn observe(&mut self, value: f64) {
        let v = if value.is_finite() && value > 0.0 {
            value
        } else {
            0.0
        };
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// `(upper bound, cumulative count)` per finite bucket, ascending.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        self.bounds
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                acc += c;
                (*b, acc)
            })
            .collect()
    }

    /// Sum of the observed values.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_counts_include_lower_buckets() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(7.0);
        h.observe(f64::NAN);
        assert_eq!(h.cumulative(), vec![(0.1, 2), (1.0, 3)]);
        assert_eq!(h.count(), 4);
        assert!((h.sum() - 7.55).abs() < 1e-9);
    }
}
