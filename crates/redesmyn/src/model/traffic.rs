//! Traffic weights between the versions of a model (an A/B split).
//!
//! Weights are checked once, when set, and kept as cumulative bounds in
//! version order, so a pick is a short walk: a point in `[0, 1)` lands in
//! the version whose share covers it. The point is the hash of a client's
//! routing key (the same key lands on the same version while the weights
//! stand) or a random draw.

use std::collections::BTreeMap;

/// Weights by version, validated and normalised to shares of 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    /// `(version, upper bound of its share in [0, 1])`, in version order;
    /// the last bound is 1.
    bounds: Vec<(String, f64)>,
    /// The weights as given, by version.
    weights: BTreeMap<String, f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrafficError {
    #[error("traffic weights are empty; expected at least one version with a weight > 0")]
    Empty,
    #[error("traffic weight of version '{0}' must be a finite number >= 0, got {1}")]
    BadWeight(String, f64),
    #[error("traffic weights must add up to more than 0")]
    ZeroSum,
    #[error("traffic names version '{0}', which model '{1}' does not have")]
    UnknownVersion(String, String),
}

impl Traffic {
    /// Checks `weights`: finite, non-negative, adding up to more than 0.
    /// Whether the versions exist is the registry's check.
    pub fn new(weights: BTreeMap<String, f64>) -> Result<Self, TrafficError> {
        if weights.is_empty() {
            return Err(TrafficError::Empty);
        }
        if let Some((v, w)) = weights.iter().find(|(_, w)| !w.is_finite() || **w < 0.0) {
            return Err(TrafficError::BadWeight(v.clone(), *w));
        }
        let sum: f64 = weights.values().sum();
        if sum <= 0.0 || !sum.is_finite() {
            return Err(TrafficError::ZeroSum);
        }
        let mut acc = 0.0;
        let mut bounds: Vec<(String, f64)> = weights
            .iter()
            .filter(|(_, w)| **w > 0.0)
            .map(|(v, w)| {
                acc += w / sum;
                (v.clone(), acc)
            })
            .collect();
        if let Some(last) = bounds.last_mut() {
            last.1 = 1.0;
        }
        Ok(Traffic { bounds, weights })
    }

    pub fn weights(&self) -> &BTreeMap<String, f64> {
        &self.weights
    }

    /// The share of each version (weights divided by their sum).
    pub fn shares(&self) -> BTreeMap<String, f64> {
        let sum: f64 = self.weights.values().sum();
        self.weights.iter().map(|(v, w)| (v.clone(), w / sum)).collect()
    }

    /// The version a point in `[0, 1)` lands on.
    pub fn pick_at(&self, point: f64) -> &str {
        let found = self.bounds.iter().find(|(_, bound)| point < *bound).or(self.bounds.last());
        found.map_or("", |(v, _)| v.as_str())
    }

    /// The version for a request: its routing key's, else a random one.
    pub fn pick(&self, routing_key: Option<&str>) -> &str {
        if self.bounds.len() == 1 {
            return &self.bounds[0].0;
        }
        let point = match routing_key {
            Some(key) => key_point(key),
            None => fastrand::f64(),
        };
        self.pick_at(point)
    }
}

/// A routing key's point in `[0, 1)`: its 64-bit xxh3 hash (seed 0, the
/// same in every process and release), top 53 bits over 2^53.
pub fn key_point(key: &str) -> f64 {
    let hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(pairs: &[(&str, f64)]) -> Result<Traffic, TrafficError> {
        Traffic::new(pairs.iter().map(|(v, w)| (v.to_string(), *w)).collect())
    }

    #[test]
    fn weights_are_checked() {
        assert_eq!(traffic(&[]), Err(TrafficError::Empty));
        assert_eq!(traffic(&[("1", -0.1)]), Err(TrafficError::BadWeight("1".into(), -0.1)));
        assert!(matches!(traffic(&[("1", f64::NAN)]), Err(TrafficError::BadWeight(..))));
        assert!(matches!(traffic(&[("1", f64::INFINITY)]), Err(TrafficError::BadWeight(..))));
        assert_eq!(traffic(&[("1", 0.0), ("2", 0.0)]), Err(TrafficError::ZeroSum));
        assert!(traffic(&[("1", 0.0), ("2", 3.0)]).is_ok());
    }

    #[test]
    fn a_point_lands_on_the_version_whose_share_covers_it() {
        let t = traffic(&[("1", 9.0), ("2", 1.0)]).unwrap();
        assert_eq!(t.pick_at(0.0), "1");
        assert_eq!(t.pick_at(0.899), "1");
        assert_eq!(t.pick_at(0.9), "2");
        assert_eq!(t.pick_at(0.999_999), "2");
        let zero = traffic(&[("1", 0.0), ("2", 1.0)]).unwrap();
        assert_eq!(zero.pick_at(0.0), "2");
        assert_eq!(zero.pick(None), "2");
    }

    #[test]
    fn random_picks_follow_the_weights() {
        let t = traffic(&[("a", 0.9), ("b", 0.1)]).unwrap();
        let b = (0..100_000).filter(|_| t.pick(None) == "b").count();
        assert!((9_000..11_000).contains(&b), "{b}");
    }

    #[test]
    fn a_routing_key_always_lands_on_the_same_version_and_keys_spread() {
        let t = traffic(&[("1", 0.5), ("2", 0.5)]).unwrap();
        for i in 0..100 {
            let key = format!("user-{i}");
            let first = t.pick(Some(&key)).to_string();
            assert!((0..10).all(|_| t.pick(Some(&key)) == first));
        }
        let twos = (0..10_000).filter(|i| t.pick(Some(&format!("user-{i}"))) == "2").count();
        assert!((4_500..5_500).contains(&twos), "{twos}");
        // Stable across processes: the point is a fixed function of the key.
        assert_eq!(key_point("abc"), key_point("abc"));
        assert!((0.0..1.0).contains(&key_point("")));
    }
}
