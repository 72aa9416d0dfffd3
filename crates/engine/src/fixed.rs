//! Fixed-point arithmetic: milli-points, rounding, and integer-only decay factors.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Points in thousandths (milli-points): `Points::from_milli(12_500)` is 12.5 points.
///
/// Everything that is summed is summed as `i64` milli-points, never as floats.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Points(pub i64);

impl Points {
    /// Zero points.
    pub const ZERO: Points = Points(0);

    /// From milli-points.
    pub const fn from_milli(milli: i64) -> Self {
        Points(milli)
    }

    /// From whole points.
    pub const fn from_whole(points: i64) -> Self {
        Points(points.saturating_mul(1000))
    }

    /// Milli-points.
    pub const fn milli(self) -> i64 {
        self.0
    }

    /// For display only (never sum these).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (whole, frac) = (abs / 1000, abs % 1000);
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let s = format!("{frac:03}");
            write!(f, "{sign}{whole}.{}", s.trim_end_matches('0'))
        }
    }
}

/// Largest magnitude of points accepted anywhere in a model (one million points).
pub const MAX_POINTS_MILLI: i64 = 1_000_000_000;

/// Converts a model number to milli-points: finite, |x| <= 1e6, at most 3 decimals.
pub(crate) fn to_milli(x: f64) -> Result<i64, String> {
    if !x.is_finite() {
        return Err("must be a finite number".to_owned());
    }
    let scaled = x * 1000.0;
    let rounded = scaled.round();
    if rounded.abs() > MAX_POINTS_MILLI as f64 {
        return Err("must be between -1000000 and 1000000".to_owned());
    }
    if (scaled - rounded).abs() > 1e-6 {
        return Err("at most 3 decimals are allowed".to_owned());
    }
    Ok(rounded as i64)
}

/// `n / d` rounded to the nearest integer, ties to even. `d` must be positive.
pub(crate) fn div_round_half_even(n: i128, d: i128) -> i128 {
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d);
    let twice = r * 2;
    if twice > d || (twice == d && q % 2 != 0) { q + 1 } else { q }
}

/// One hour in milliseconds: the time unit of decay, windows and cap periods.
pub const HOUR_MS: i64 = 3_600_000;

/// The epoch-aligned UTC hour of a timestamp (ms), clamped to `i32`.
pub(crate) fn hour_of(time_ms: i64) -> i32 {
    let h = time_ms.div_euclid(HOUR_MS);
    h.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// One in Q40 fixed point: decay factors are multiples of 2^-40.
pub(crate) const Q40_ONE: u64 = 1 << 40;

/// 2^(-1/2^j) for j = 1..=16, in Q62, rounded to nearest (computed offline with 80 digits).
const HALF_ROOTS_Q62: [u64; 16] = [
    0x2d41_3ccc_fe77_9921,
    0x35d1_3f32_b5a7_5abd,
    0x3ab0_31b9_f749_0e4c,
    0x3d49_5f45_4921_b30b,
    0x3ea0_ecb6_dc8a_80cf,
    0x3f4f_8303_3d21_b05d,
    0x3fa7_8457_1ee3_e213,
    0x3fd3_b2d6_5447_b229,
    0x3fe9_d594_8723_6bb4,
    0x3ff4_e9d4_703d_f843,
    0x3ffa_74ac_bdf6_c9d5,
    0x3ffd_3a46_ffc6_e30f,
    0x3ffe_9d1f_a801_0199,
    0x3fff_4e8e_de05_3ad5,
    0x3fff_a747_3183_76ac,
    0x3fff_d3a3_8961_e6ff,
];

/// Compiled time decay; durations in whole hours (> 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decay {
    /// Full weight forever.
    None,
    /// Weight 2^(-age/h).
    HalfLife(i64),
    /// Weight (d - age)/d, zero from age d on.
    Linear(i64),
    /// Weight 1 while age < d, then 0.
    Expire(i64),
}

impl Decay {
    /// Weight of an award `age_hours` (>= 0) old, in Q40 (`Q40_ONE` is full weight).
    ///
    /// Integer-only: the half-life fraction is quantised to 1/65536 of a half-life and built
    /// from a table of 16 constants, each product rounded to nearest (ties up) in Q62; the final
    /// Q62 → Q40 shift rounds to nearest, ties up.
    pub(crate) fn factor_q40(self, age_hours: i64) -> u64 {
        let age = age_hours.max(0);
        match self {
            Decay::None => Q40_ONE,
            Decay::Expire(d) => {
                if age < d {
                    Q40_ONE
                } else {
                    0
                }
            }
            Decay::Linear(d) => {
                if age >= d {
                    0
                } else {
                    let n = i128::from(d - age) << 40;
                    div_round_half_even(n, i128::from(d)) as u64
                }
            }
            Decay::HalfLife(h) => {
                let halvings = age / h;
                let rest = age % h;
                // rest < h, so this is < 65536.
                let k = ((i128::from(rest) << 16) / i128::from(h)) as u32;
                let mut acc: u128 = 1 << 62;
                for (j, c) in HALF_ROOTS_Q62.iter().enumerate() {
                    if k & (1 << (15 - j)) != 0 {
                        acc = (acc * u128::from(*c) + (1 << 61)) >> 62;
                    }
                }
                let shift = 22 + halvings;
                if shift >= 64 {
                    0
                } else {
                    let s = shift as u32;
                    ((acc + (1u128 << (s - 1))) >> s) as u64
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_even() {
        assert_eq!(div_round_half_even(5, 2), 2);
        assert_eq!(div_round_half_even(7, 2), 4);
        assert_eq!(div_round_half_even(-5, 2), -2);
        assert_eq!(div_round_half_even(-7, 2), -4);
        assert_eq!(div_round_half_even(10, 3), 3);
        assert_eq!(div_round_half_even(-10, 3), -3);
    }

    #[test]
    fn half_life_factors() {
        let d = Decay::HalfLife(720);
        assert_eq!(d.factor_q40(0), Q40_ONE);
        assert_eq!(d.factor_q40(720), Q40_ONE / 2);
        assert_eq!(d.factor_q40(1440), Q40_ONE / 4);
        // A quarter of a half-life: 2^-0.25 = 0.840896415...
        let q = d.factor_q40(180) as f64 / Q40_ONE as f64;
        assert!((q - 0.840_896_415_253_714_5).abs() < 1e-9, "{q}");
        // Monotone non-increasing.
        let mut last = u64::MAX;
        for age in 0..3000 {
            let f = d.factor_q40(age);
            assert!(f <= last);
            last = f;
        }
        assert_eq!(d.factor_q40(720 * 70), 0);
    }

    #[test]
    fn linear_and_expire() {
        assert_eq!(Decay::Linear(100).factor_q40(50), Q40_ONE / 2);
        assert_eq!(Decay::Linear(100).factor_q40(100), 0);
        assert_eq!(Decay::Expire(10).factor_q40(9), Q40_ONE);
        assert_eq!(Decay::Expire(10).factor_q40(10), 0);
    }

    #[test]
    fn points_display() {
        assert_eq!(Points(12_500).to_string(), "12.5");
        assert_eq!(Points(-3_000).to_string(), "-3");
        assert_eq!(Points(-5).to_string(), "-0.005");
    }

    #[test]
    fn to_milli_checks() {
        assert_eq!(to_milli(0.6), Ok(600));
        assert_eq!(to_milli(-12.345), Ok(-12_345));
        assert!(to_milli(0.0001).is_err());
        assert!(to_milli(f64::NAN).is_err());
        assert!(to_milli(2e6).is_err());
    }
}
