//! Small statistics over timings.

/// The median of `values`: the middle one, and for an even count the upper of the two middle
/// ones (the workspace's convention, shared by the side-by-side benches' Python twins, so a
/// median is always a measured value); NaN for none. NaNs sort last (`total_cmp`).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(&[]).is_nan());
    }
}
