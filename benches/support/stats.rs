//! Statistics of paired benchmark rounds (run together or alternating): medians with their
//! spreads (min-max and interquartile range), and how many rounds a median needs before its
//! uncertainty is small.
//!
//! Shared by the benches (`#[path = "support/stats.rs"] mod stats;`) and run as its own
//! test target (`cargo test --bench stats`).

#![allow(dead_code, unused_imports)]

/// A sample's order statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spread {
    /// Number of values.
    pub(crate) n: usize,
    /// Smallest value.
    pub(crate) min: f64,
    /// First quartile (linear interpolation between order statistics).
    pub(crate) q1: f64,
    /// Median (the mean of the middle two of an even count).
    pub(crate) median: f64,
    /// Third quartile.
    pub(crate) q3: f64,
    /// Largest value.
    pub(crate) max: f64,
    /// Coefficient of variation: sample standard deviation over the mean (0 for one value).
    pub(crate) cv: f64,
}

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.96;
/// The median's standard error over the mean's, for normally distributed rounds (sqrt(pi/2)).
const MEDIAN_EFFICIENCY: f64 = 1.2533;

impl Spread {
    /// The statistics of `values`; `None` when empty or when a value is not finite.
    pub(crate) fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let cv = if n > 1 && mean != 0.0 {
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            var.sqrt() / mean.abs()
        } else {
            0.0
        };
        Some(Self {
            n,
            min: v[0],
            q1: quantile(&v, 0.25),
            median: quantile(&v, 0.5),
            q3: quantile(&v, 0.75),
            max: v[n - 1],
            cv,
        })
    }

    /// Interquartile range.
    pub(crate) fn iqr(&self) -> f64 {
        self.q3 - self.q1
    }

    /// Half-width of the 95 % interval of the median, relative to it (0.03 = +-3 %), from the
    /// rounds' coefficient of variation: 1.96 x 1.2533 x cv / sqrt(n).
    pub(crate) fn median_uncertainty(&self) -> f64 {
        Z95 * MEDIAN_EFFICIENCY * self.cv / (self.n as f64).sqrt()
    }

    /// Rounds needed for the median's 95 % interval to be within +-`within` (0.03 = 3 %).
    pub(crate) fn rounds_for(&self, within: f64) -> usize {
        let n = (Z95 * MEDIAN_EFFICIENCY * self.cv / within).powi(2).ceil();
        (n as usize).max(1)
    }
}

/// The `p` quantile of sorted `v` (0 <= p <= 1), interpolated linearly between order
/// statistics (Hyndman and Fan's type 7, what R and numpy use by default).
pub(crate) fn quantile(v: &[f64], p: f64) -> f64 {
    debug_assert!(!v.is_empty() && (0.0..=1.0).contains(&p));
    let h = (v.len() - 1) as f64 * p;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    v[lo] + (h - lo as f64) * (v[hi] - v[lo])
}

/// Element-wise ratios `a[i] / b[i]` of paired rounds.
pub(crate) fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

impl std::fmt::Display for Spread {
    /// `0.97 (IQR 0.95-0.98, min-max 0.93-1.00, +-1.2 %, 5 rounds; 3 % needs 4)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} (IQR {:.3}-{:.3}, min-max {:.3}-{:.3}; median +-{:.1} % at 95 % over {} rounds, \
             +-3 % needs {} rounds)",
            self.median,
            self.q1,
            self.q3,
            self.min,
            self.max,
            self.median_uncertainty() * 100.0,
            self.n,
            self.rounds_for(0.03)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert!(close(s.median, 2.5), "{s:?}");
        let s = Spread::of(&[10.0, 30.0]).unwrap();
        assert!(close(s.median, 20.0), "{s:?}");
    }

    #[test]
    fn median_of_an_odd_count_is_the_middle_value_whatever_the_outlier() {
        let s = Spread::of(&[0.9, 0.95, 0.7, 0.93, 0.94]).unwrap();
        assert!(close(s.median, 0.93), "{s:?}");
        assert!(close(s.min, 0.7) && close(s.max, 0.95));
    }

    #[test]
    fn quartiles_interpolate_like_numpy() {
        // numpy.percentile([1..8], [25, 75]) = [2.75, 6.25]
        let v: Vec<f64> = (1..=8).map(f64::from).collect();
        let s = Spread::of(&v).unwrap();
        assert!(close(s.q1, 2.75) && close(s.q3, 6.25), "{s:?}");
        assert!(close(s.iqr(), 3.5));
        // numpy.percentile([1, 2, 3, 4, 5], [25, 75]) = [2, 4]
        let s = Spread::of(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert!(close(s.q1, 2.0) && close(s.q3, 4.0), "{s:?}");
    }

    #[test]
    fn one_value_has_no_spread() {
        let s = Spread::of(&[7.0]).unwrap();
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (7.0, 7.0, 7.0, 7.0, 7.0)
        );
        assert_eq!(s.cv, 0.0);
        assert_eq!(s.rounds_for(0.03), 1);
    }

    #[test]
    fn empty_or_non_finite_rounds_have_no_statistics() {
        assert!(Spread::of(&[]).is_none());
        assert!(Spread::of(&[1.0, f64::NAN]).is_none());
        assert!(Spread::of(&[1.0, f64::INFINITY]).is_none());
    }

    #[test]
    fn rounds_needed_grow_with_the_square_of_the_variation() {
        // cv 5 %: (1.96 x 1.2533 x 0.05 / 0.03)^2 = 16.8 -> 17 rounds; cv 10 %: 67.05 -> 68.
        let five = Spread {
            n: 5,
            min: 0.0,
            q1: 0.0,
            median: 1.0,
            q3: 0.0,
            max: 0.0,
            cv: 0.05,
        };
        assert_eq!(five.rounds_for(0.03), 17);
        assert_eq!(Spread { cv: 0.10, ..five }.rounds_for(0.03), 68);
        // And the uncertainty at those rounds is within 3 %.
        let at = Spread { n: 17, ..five };
        assert!(
            at.median_uncertainty() <= 0.03,
            "{}",
            at.median_uncertainty()
        );
    }

    #[test]
    fn sample_cv_uses_n_minus_one() {
        // mean 2, sample sd 1 -> cv 0.5
        let s = Spread::of(&[1.0, 2.0, 3.0]).unwrap();
        assert!(close(s.cv, 0.5), "{s:?}");
    }

    #[test]
    fn paired_ratios_divide_round_by_round() {
        assert_eq!(ratios(&[2.0, 3.0], &[4.0, 3.0]), vec![0.5, 1.0]);
    }
}
