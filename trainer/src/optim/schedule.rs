//! Learning-rate and momentum schedules, per step.

use config::Schedule;

/// Learning rate at `step` of `total` steps, `warmup` of which ramp up, for a peak of `peak`.
/// Cosine: linear warm-up from peak/100 (SoCo's multiplier 100), then half a cosine to `final_lr`.
/// (MoCo steps its cosine per epoch; per step is the same curve without the staircase.)
pub fn learning_rate(
    schedule: &Schedule,
    peak: f64,
    step: usize,
    total: usize,
    warmup: usize,
) -> f64 {
    match *schedule {
        Schedule::Constant => peak,
        Schedule::Cosine { final_lr, .. } => {
            if step < warmup {
                let start = peak / 100.0;
                start + (peak - start) * step as f64 / warmup as f64
            } else {
                let t = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
                final_lr
                    + (peak - final_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
        }
        Schedule::Poly { power, min_lr } => {
            let t = step as f64 / total.max(1) as f64;
            ((peak - min_lr) * (1.0 - t.min(1.0)).powf(power)) + min_lr
        }
    }
}

/// BYOL/SoCo target momentum: τ_k = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2.
pub fn cosine_momentum(base: f64, step: usize, total: usize) -> f64 {
    let t = step as f64 / total.max(1) as f64;
    1.0 - (1.0 - base) * ((std::f64::consts::PI * t.min(1.0)).cos() + 1.0) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_hits_its_ends() {
        let s = Schedule::Cosine {
            warmup_epochs: 0.0,
            final_lr: 0.0,
        };
        assert!((learning_rate(&s, 0.03, 0, 100, 0) - 0.03).abs() < 1e-12);
        assert!((learning_rate(&s, 0.03, 50, 100, 0) - 0.015).abs() < 1e-12);
        assert!(learning_rate(&s, 0.03, 100, 100, 0).abs() < 1e-12);
        // Warm-up: from peak/100 up to the peak.
        assert!((learning_rate(&s, 1.0, 0, 100, 10) - 0.01).abs() < 1e-12);
        assert!((learning_rate(&s, 1.0, 10, 100, 10) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn momentum_goes_from_base_to_one() {
        assert!((cosine_momentum(0.99, 0, 10) - 0.99).abs() < 1e-12);
        assert!((cosine_momentum(0.99, 10, 10) - 1.0).abs() < 1e-12);
    }
}
