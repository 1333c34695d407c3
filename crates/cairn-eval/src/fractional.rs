//! flagd's `fractional` operation with v2 ("high-precision") bucketing.
//!
//! The bucketing value is hashed with MurmurHash3 x86 32-bit (seed 0) over its UTF-8 bytes;
//! with `totalWeight` the sum of the bucket weights, the bucket index is
//! `(hash as u64 * totalWeight) >> 32`, in `[0, totalWeight)`, and the chosen variant is the
//! first whose cumulative weight exceeds it.

use crate::compile::{Const, Expr};
use crate::murmur3::Murmur3;

/// The largest total weight flagd accepts (`i32::MAX`).
pub const MAX_TOTAL_WEIGHT: u64 = i32::MAX as u64;

#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub variant: Expr,
    /// `None` when omitted: weight 1.
    pub weight: Option<Expr>,
}

#[derive(Debug, Clone)]
pub(crate) struct Fractional {
    /// The custom bucketing expression; `None`: `$flagd.flagKey` + `targetingKey`.
    pub bucket_by: Option<Expr>,
    pub buckets: Box<[Bucket]>,
    /// Cumulative weights, when every weight is a constant.
    pub cumulative: Option<Box<[u64]>>,
    /// The hash state after the flag key, for the default bucketing value.
    pub flag_key_prefix: Murmur3,
}

/// Checks one weight value: a whole number in `[0, i32::MAX]`; `null` means 1.
pub(crate) fn weight_of(n: Option<f64>) -> Result<u64, String> {
    let Some(n) = n else { return Ok(1) };
    if !n.is_finite() || n.fract() != 0.0 {
        return Err(format!(
            "a `fractional` weight must be a whole number, found {n}"
        ));
    }
    if n < 0.0 || n > MAX_TOTAL_WEIGHT as f64 {
        return Err(format!(
            "a `fractional` weight must be between 0 and {MAX_TOTAL_WEIGHT}, found {n}"
        ));
    }
    Ok(n as u64)
}

pub(crate) fn const_weight(c: &Const) -> Result<u64, String> {
    match c {
        Const::Null => weight_of(None),
        Const::Num(n) => weight_of(Some(*n)),
        _ => Err("a `fractional` weight must be a number".to_owned()),
    }
}

/// Cumulative sums of the weights, checking the total.
pub(crate) fn cumulate(weights: impl Iterator<Item = u64>) -> Result<Vec<u64>, String> {
    let mut acc = 0u64;
    let mut out = Vec::new();
    for w in weights {
        acc += w;
        if acc > MAX_TOTAL_WEIGHT {
            return Err(format!(
                "the `fractional` weights add up to more than {MAX_TOTAL_WEIGHT}"
            ));
        }
        out.push(acc);
    }
    Ok(out)
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

/// Picks the variant index for a hash and weights, as flagd does; `None` if all weights are 0.
pub fn select_bucket(hash: u32, weights: &[u64]) -> Option<usize> {
    let cumulative = cumulate(weights.iter().copied()).ok()?;
    let total = *cumulative.last()?;
    if total == 0 {
        return None;
    }
    pick(&cumulative, bucket_value(hash, total))
}

impl Fractional {
    pub(crate) fn new(
        bucket_by: Option<Expr>,
        buckets: Vec<Bucket>,
        flag_key: &str,
    ) -> Result<Self, String> {
        let consts: Option<Vec<u64>> = buckets
            .iter()
            .map(|b| match &b.weight {
                None => Some(Ok(1)),
                Some(e) => e.as_const().map(const_weight),
            })
            .collect::<Option<Result<Vec<u64>, String>>>()
            .transpose()?;
        let cumulative = match consts {
            Some(w) => {
                let c = cumulate(w.into_iter())?;
                if c.last().copied().unwrap_or(0) == 0 {
                    return Err("the `fractional` weights add up to 0".to_owned());
                }
                Some(c.into_boxed_slice())
            }
            None => None,
        };
        let mut flag_key_prefix = Murmur3::new(0);
        flag_key_prefix.write(flag_key.as_bytes());
        Ok(Self {
            bucket_by,
            buckets: buckets.into_boxed_slice(),
            cumulative,
            flag_key_prefix,
        })
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
    fn weights_must_be_whole_and_in_range() {
        assert_eq!(weight_of(None), Ok(1));
        assert_eq!(weight_of(Some(7.0)), Ok(7));
        assert!(weight_of(Some(0.5)).is_err());
        assert!(weight_of(Some(-1.0)).is_err());
        assert!(weight_of(Some(3e9)).is_err());
    }
}
