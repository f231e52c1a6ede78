//! Synthetic sensor signals with labelled anomalies, seeded and reproducible.
//!
//! A series is `level + daily seasonality + mean-reverting random walk + sensor noise`
//! (optionally another cycle length and waveform, and normal bursts: [`Shape`]),
//! sampled at a fixed interval. Anomalies arrive as a Poisson process (rate per series-hour)
//! and never overlap; each is one of [`AnomalyKind::ALL`] with a magnitude in units of the
//! metric's typical scale. The same (seed, series id) always produces the same samples.
//!
//! `signals.rs` holds the normal behaviour (profiles, shapes, [`Series`]); `anomalies.rs` the
//! injected anomalies and the process that draws them; `rng.rs` the seeded generator.
//! Everything is re-exported here: `sensorflow_models::synth::Series`.
//!
//! [`rigs`] is separate: multivariate rigs (correlated sensors driven by latent operating
//! variables) with labelled faults, the device-level benchmark of issue 14.

mod anomalies;
pub mod rigs;
mod rng;
mod signals;

pub use anomalies::{Anomaly, AnomalyKind, AnomalyPlan, Durations};
pub use rng::SplitMix64;
pub use signals::{profile, MetricProfile, Sample, Series, Shape, Waveform, PROFILES};

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, n: u64, plan: AnomalyPlan) -> (Vec<Option<f64>>, Vec<Anomaly>) {
        let mut s = Series::new(seed, 7, PROFILES[0], plan, 0);
        let mut values = Vec::new();
        let mut anomalies = Vec::new();
        for i in 0..n {
            let (sample, started) = s.sample(i * 1000, 1000);
            values.push(sample.value);
            anomalies.extend(started);
        }
        (values, anomalies)
    }

    #[test]
    fn same_seed_same_series_other_seed_differs() {
        let plan = AnomalyPlan { rate_per_hour: 2.0, ..AnomalyPlan::default() };
        let a = run(1, 20_000, plan.clone());
        let b = run(1, 20_000, plan.clone());
        let c = run(2, 20_000, plan);
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
        assert_ne!(a.0, c.0);
    }

    #[test]
    fn every_kind_appears_and_leaves_its_mark() {
        let plan = AnomalyPlan { rate_per_hour: 6.0, ..AnomalyPlan::default() };
        let (values, anomalies) = run(3, 200_000, plan);
        for kind in AnomalyKind::ALL {
            let seen: Vec<&Anomaly> = anomalies.iter().filter(|a| a.kind == kind).collect();
            assert!(!seen.is_empty(), "{kind:?} never injected");
            let a = seen[0];
            let at = (a.start_ms / 1000) as usize;
            let end = (a.end_ms / 1000) as usize;
            match kind {
                AnomalyKind::Dropout => assert!(values[at..end].iter().all(Option::is_none)),
                AnomalyKind::StuckAt => {
                    assert!(values[at..end].windows(2).all(|w| w[0] == w[1]), "stuck values vary")
                }
                AnomalyKind::Spike => assert!(values[at].unwrap() > values[at - 1].unwrap() + 10.0),
                AnomalyKind::Dip => assert!(values[at].unwrap() < values[at - 1].unwrap() - 10.0),
                _ => assert!(end > at + 30, "{kind:?} should last minutes"),
            }
        }
        // Anomalies never overlap.
        for w in anomalies.windows(2) {
            assert!(w[0].end_ms <= w[1].start_ms);
        }
    }

    #[test]
    fn sample_durations_do_not_depend_on_the_interval() {
        // At a five-minute interval wall-clock durations make a level shift a blip of at most
        // four samples; sample durations keep it 10–1,000 samples long.
        let interval = 300_000;
        let plan = |durations| AnomalyPlan {
            rate_per_hour: 0.05,
            kinds: vec![AnomalyKind::LevelShift],
            durations,
            ..AnomalyPlan::default()
        };
        for (durations, lo, hi) in [(Durations::WallClock, 1, 4), (Durations::Samples, 10, 1000)] {
            let mut s = Series::new(9, 1, PROFILES[0], plan(durations), 0);
            let mut lengths = Vec::new();
            for i in 0..200_000u64 {
                if let (_, Some(a)) = s.sample(i * interval, interval) {
                    lengths.push((a.end_ms - a.start_ms).div_ceil(interval));
                }
            }
            assert!(lengths.len() >= 20, "{durations:?}: {} shifts", lengths.len());
            assert!(lengths.iter().all(|l| (lo..=hi).contains(l)), "{durations:?}: {lengths:?}");
            if durations == Durations::Samples {
                assert!(lengths.iter().any(|&l| l > 200), "long shifts occur: {lengths:?}");
            }
        }
    }

    #[test]
    fn shapes_give_square_cycles_and_normal_bursts() {
        let quiet = MetricProfile { noise: 0.0, walk_sigma: 0.0, ..PROFILES[0] };
        let plan = AnomalyPlan { rate_per_hour: 0.0, ..AnomalyPlan::default() };
        let square = Shape {
            waveform: Waveform::Square { duty: 0.25 },
            period_samples: Some(100.0),
            ..Shape::default()
        };
        let mut s = Series::new(1, 2, quiet, plan.clone(), 0).with_shape(square);
        let values: Vec<f64> = (0..1000u64).map(|i| s.sample(i * 1000, 1000).0.value.unwrap()).collect();
        let high = values.iter().copied().fold(f64::MIN, f64::max);
        let low = values.iter().copied().fold(f64::MAX, f64::min);
        let on = values.iter().filter(|&&v| (v - high).abs() < 1e-9).count();
        let off = values.iter().filter(|&&v| (v - low).abs() < 1e-9).count();
        assert_eq!(on + off, 1000, "a noiseless square wave has two values");
        assert!((230..=270).contains(&on), "on for a quarter of each cycle: {on}");
        assert!(high - low > 1.0, "{low}..{high}");

        let bursty = Shape { burst_rate: 0.02, burst_size: 1.0, ..Shape::default() };
        let flat = MetricProfile { daily_amplitude: 0.0, ..quiet };
        let mut s = Series::new(1, 2, flat, plan, 0).with_shape(bursty);
        let values: Vec<f64> = (0..20_000u64).map(|i| s.sample(i * 1000, 1000).0.value.unwrap()).collect();
        let base = values.iter().copied().fold(f64::MAX, f64::min);
        // Bursts of at least one scale unit (3.0) start about 400 times; each decays by half a
        // sample, so a few samples per burst stand out.
        let raised = values.iter().filter(|&&v| v > base + 1.5).count();
        assert!((300..=2000).contains(&raised), "{raised} raised samples");
    }

    #[test]
    fn normal_signal_stays_in_a_plausible_band() {
        let plan = AnomalyPlan { rate_per_hour: 0.0, ..AnomalyPlan::default() };
        let (values, anomalies) = run(4, 86_400, plan);
        assert!(anomalies.is_empty());
        let vals: Vec<f64> = values.into_iter().map(|v| v.unwrap()).collect();
        let (min, max) = vals.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(min > 5.0 && max < 37.0, "temperature range {min}..{max}");
        assert!(max - min > 2.0, "a day should show seasonality, range {min}..{max}");
    }
}
