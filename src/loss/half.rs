//! The GDL as half precision (fp16) computes it, for the lab: every sum, weight and ratio
//! rounded to the nearest fp16 value, ∞ past 65 504, as under mixed-precision training when the
//! loss is not cast to float32 first.
//!
//! Why by hand: burn's backends differ in f16 support (WebGPU needs the `shader-f16` feature,
//! which SwiftShader lacks), and the point is fp16's *rounding and range* on any device, so the
//! rounding is written in f32 tensor operations. Gradients pass straight through the rounding
//! (its derivative is taken as 1), as they would through a cast.

use burn::prelude::*;

use super::gdl::{
    ClassSums, GdlConfig, GdlParts, WeightType, absent_take_row_max, class_sums, drop_background,
    gdl_from_parts_rounded,
};

/// fp16's largest finite value.
pub const HALF_MAX: f32 = 65_504.0;

/// `x` rounded to the nearest fp16 value (ties to even, as `round` does), ±∞ past the range, and
/// fp16's subnormals below 2⁻¹⁴.
pub fn round_to_half<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let value = x.clone().detach();
    let magnitude = value.clone().abs();
    // The spacing of fp16 values near |x|: 2^(e − 10) in [2^e, 2^(e+1)) (10 fraction bits),
    // 2⁻²⁴ below 2⁻¹⁴ (subnormals). Chosen by comparisons with exact powers of two, so that
    // |x|/spacing, its rounding and the product back are exact on every device: products such as
    // Veltkamp's split or exp(e·ln 2) are not, where a GPU compiler fuses or approximates them.
    let mut spacing = magnitude.ones_like().mul_scalar(2f32.powi(-24));
    for exponent in -14..=15 {
        let at_least = magnitude.clone().greater_equal_elem(2f32.powi(exponent));
        spacing = spacing.mask_fill(at_least, 2f32.powi(exponent - 10));
    }
    let rounded = (magnitude.clone() / spacing.clone()).round() * spacing;
    // Past 65 504 (halfway to the next step, 65 536, rounds up) fp16 has ±∞.
    // ∞ is made at run time (the largest f32 doubled): WGSL refuses an infinite constant.
    let overflow = rounded.clone().greater_elem(HALF_MAX);
    let largest = magnitude.clamp_min(f32::MAX);
    let rounded = rounded.mask_where(overflow, largest.clone() + largest) * value.clone().sign();
    // Straight through: the value is the rounded one, the gradient that of `x`.
    x + (rounded - value)
}

/// The GDL with its per-class sums, weights, numerator, denominator and ratio each rounded to
/// fp16 ([`round_to_half`]). With 1/G² weights, G² passes 65 504 once G > 255, so the weight of
/// every class that large becomes 1/∞ = 0; with all weights 0 the fraction is smooth_nr/smooth_dr
/// and the loss reads 0. Once P + G passes 65 504 (a 64³ patch's background) it is ∞ and 0·∞ is
/// NaN.
pub fn half_precision_gdl(probs: Tensor<5>, target: Tensor<5>, config: &GdlConfig) -> GdlParts {
    let (probs, target) = drop_background(probs, target, config.include_background);
    let sums = class_sums(probs, target, config.batch);
    let sums = ClassSums {
        intersection: round_to_half(sums.intersection),
        prediction: round_to_half(sums.prediction),
        target: round_to_half(sums.target),
    };
    let weight = half_weights(sums.target.clone(), config.weight_type);
    gdl_from_parts_rounded(sums, weight, config, round_to_half::<2>)
}

/// MONAI's weights in fp16: `1/G²` is 1/∞ = 0 once G² overflows; an absent class (1/0 = ∞)
/// takes the row's largest weight, as MONAI replaces infinities (so 0 when every present class
/// underflowed).
fn half_weights(target_sum: Tensor<2>, weight_type: WeightType) -> Tensor<2> {
    let target_sum = target_sum.detach();
    if weight_type == WeightType::Uniform {
        return target_sum.ones_like();
    }
    let absent = target_sum.clone().equal_elem(0.0);
    let safe = target_sum.mask_fill(absent.clone(), 1.0);
    let power = match weight_type {
        WeightType::Square => round_to_half(safe.square()),
        _ => safe,
    };
    // 1/∞ is 0 in IEEE arithmetic; written as a mask so that no backend needs to divide by ∞.
    let overflowed = power.clone().greater_elem(HALF_MAX);
    let weight =
        round_to_half(power.mask_fill(overflowed.clone(), 1.0).recip()).mask_fill(overflowed, 0.0);
    absent_take_row_max(weight, absent)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// Each value's fp16 rounding as numpy gives it (`np.float16(np.float32(x))`): subnormals,
    /// ties to even (2049 → 2048), the last finite value and the first that overflows.
    #[test]
    fn rounding_matches_numpys_float16_on_both_sides_of_every_range() {
        // fp16's subnormal spacing, 2⁻²⁴.
        const SUBNORMAL: f32 = 1.0 / 16_777_216.0;
        let cases: [(f32, f32); 21] = [
            (0.0, 0.0),
            (1e-5, 168.0 * SUBNORMAL),
            (3.3e-5, 554.0 * SUBNORMAL),
            (6.1e-5, 1023.0 * SUBNORMAL),
            (0.1, 1638.0 / 16384.0),
            (0.333_333, 1365.0 / 4096.0),
            (1.0, 1.0),
            (2.0, 2.0),
            (255.0, 255.0),
            (256.0, 256.0),
            (257.3, 257.25),
            (1000.1, 1000.0),
            (2049.0, 2048.0),
            (31_000.7, 31_008.0),
            (65_504.0, 65_504.0),
            (65_519.0, 65_504.0),
            (65_520.0, f32::INFINITY),
            (70_000.0, f32::INFINITY),
            (1e9, f32::INFINITY),
            (-3.7, -1894.0 / 512.0),
            (-70_000.0, f32::NEG_INFINITY),
        ];
        let device = Device::flex();
        let values: Vec<f32> = cases.iter().map(|case| case.0).collect();
        let ours = round_to_half(Tensor::<1>::from_floats(values.as_slice(), &device))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for ((value, numpy), ours) in cases.iter().zip(&ours) {
            assert!(
                ours == numpy,
                "{value} rounds to {numpy} in fp16 (numpy), to {ours} here"
            );
        }
    }
}
