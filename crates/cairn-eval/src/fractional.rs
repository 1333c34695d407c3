//! flagd's `fractional` operation with v2 ("high-precision") bucketing.
//!
//! The bucketing value is hashed with MurmurHash3 x86 32-bit (seed 0) over its UTF-8 bytes;
//! with `totalWeight` the sum of the bucket weights, the bucket index is
//! `(hash as u64 * totalWeight) >> 32`, in `[0, totalWeight)`, and the chosen variant is the
//! first whose cumulative weight exceeds it. Negative weights count as 0; when every weight
//! is 0, or the weights add up to more than 2^31-1, the operation yields `null`.

use crate::compile::Expr;
use crate::murmur3::Murmur3;

/// The largest total weight flagd accepts (`i32::MAX`).
pub const MAX_TOTAL_WEIGHT: u64 = i32::MAX as u64;

/// A bucket weight: a constant (already checked and clamped), or computed at evaluation.
#[derive(Debug, Clone)]
pub(crate) enum Weight {
    Const(u64),
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub variant: Expr,
    pub weight: Weight,
}

#[derive(Debug, Clone)]
pub(crate) struct Fractional {
    /// The custom bucketing expression; `None`: `$flagd.flagKey` + `targetingKey`.
    pub bucket_by: Option<Expr>,
    pub buckets: Box<[Bucket]>,
    /// Cumulative weights, when every weight is a constant (their total is in `1..=MAX`).
    pub cumulative: Option<Box<[u64]>>,
    /// The hash state after the flag key, for the default bucketing value.
    pub flag_key_prefix: Murmur3,
}

/// A weight from a number: whole numbers up to `i32::MAX`, negative ones counting as 0;
/// `None` (the operation yields `null`) for fractions, non-finite numbers and larger ones.
pub(crate) fn weight_of_number(n: f64) -> Option<u64> {
    if !n.is_finite() || n.fract() != 0.0 || n > MAX_TOTAL_WEIGHT as f64 {
        return None;
    }
    Some(if n < 0.0 { 0 } else { n as u64 })
}

/// Cumulative sums of the weights; `None` when the total exceeds [`MAX_TOTAL_WEIGHT`].
pub(crate) fn cumulate(weights: impl Iterator<Item = u64>) -> Option<Vec<u64>> {
    let mut acc = 0u64;
    let mut out = Vec::new();
    for w in weights {
        acc += w;
        if acc > MAX_TOTAL_WEIGHT {
            return None;
        }
        out.push(acc);
    }
    Some(out)
}

/// The bucket index for a hash: `(hash * total) >> 32`, always `< total` for `total > 0`.
#[inline]
pub fn bucket_value(hash: u32, total: u64) -> u64 {
    (u64::from(hash) * total) >> 32
}

/// Index of the first cumulative weight above `bucket`.
#[inline]
pub(crate) fn pick(cumulative: &[u64], bucket: u64) -> Option<usize> {
    cumulative.iter().position(|&c| bucket < c)
}

/// Picks the variant index for a hash and weights, as flagd does; `None` (the operation
/// yields `null`) if all weights are 0 or they add up to more than [`MAX_TOTAL_WEIGHT`].
pub fn select_bucket(hash: u32, weights: &[u64]) -> Option<usize> {
    let cumulative = cumulate(weights.iter().copied())?;
    let total = *cumulative.last()?;
    if total == 0 {
        return None;
    }
    pick(&cumulative, bucket_value(hash, total))
}

impl Fractional {
    /// `cumulative` must be given when every weight is constant (the compiler has checked
    /// that their total is in `1..=MAX_TOTAL_WEIGHT`).
    pub(crate) fn new(
        bucket_by: Option<Expr>,
        buckets: Vec<Bucket>,
        cumulative: Option<Vec<u64>>,
        flag_key: &str,
    ) -> Self {
        let mut flag_key_prefix = Murmur3::new(0);
        flag_key_prefix.write(flag_key.as_bytes());
        Self {
            bucket_by,
            buckets: buckets.into_boxed_slice(),
            cumulative: cumulative.map(Vec::into_boxed_slice),
            flag_key_prefix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds() {
        assert_eq!(bucket_value(0, 100), 0);
        assert_eq!(bucket_value(u32::MAX, 100), 99);
        assert_eq!(
            bucket_value(u32::MAX, MAX_TOTAL_WEIGHT),
            MAX_TOTAL_WEIGHT - 1
        );
        assert_eq!(bucket_value(1 << 31, 2), 1);
        assert_eq!(bucket_value((1 << 31) - 1, 2), 0);
    }

    #[test]
    fn select_skips_zero_weights_and_rejects_all_zero() {
        assert_eq!(select_bucket(0, &[0, 5, 5]), Some(1));
        assert_eq!(select_bucket(u32::MAX, &[0, 5, 5]), Some(2));
        assert_eq!(select_bucket(123, &[0, 0]), None);
        assert_eq!(select_bucket(123, &[MAX_TOTAL_WEIGHT, 1]), None);
    }

    #[test]
    fn weights_are_whole_negative_ones_count_as_zero() {
        assert_eq!(weight_of_number(7.0), Some(7));
        assert_eq!(weight_of_number(0.0), Some(0));
        assert_eq!(weight_of_number(-1.0), Some(0));
        assert_eq!(weight_of_number(-1e12), Some(0));
        assert_eq!(
            weight_of_number(MAX_TOTAL_WEIGHT as f64),
            Some(MAX_TOTAL_WEIGHT)
        );
        assert_eq!(weight_of_number(0.5), None);
        assert_eq!(weight_of_number(-0.5), None);
        assert_eq!(weight_of_number(3e9), None);
        assert_eq!(weight_of_number(f64::NAN), None);
        assert_eq!(weight_of_number(f64::INFINITY), None);
    }

    #[test]
    fn cumulate_refuses_totals_above_the_maximum() {
        assert_eq!(cumulate([1, 2, 3].into_iter()), Some(vec![1, 3, 6]));
        assert_eq!(
            cumulate([MAX_TOTAL_WEIGHT, 0].into_iter()),
            Some(vec![MAX_TOTAL_WEIGHT; 2])
        );
        assert_eq!(cumulate([MAX_TOTAL_WEIGHT, 1].into_iter()), None);
    }
}
