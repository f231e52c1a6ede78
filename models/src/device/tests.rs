//! Unit tests of the device detector (the behavioural tests on rigs live in
//! `models/tests/device.rs`).

use super::*;

#[test]
fn default_config_is_valid() {
    DeviceConfig::default().validate().expect("defaults validate");
}

#[test]
fn absurd_settings_are_refused_with_the_field_named() {
    for (cfg, field) in [
        (DeviceConfig { warmup_rows: 3, ..DeviceConfig::default() }, "warmup_rows"),
        (DeviceConfig { ema_seconds: vec![f64::NAN], ..DeviceConfig::default() }, "ema_seconds"),
        (DeviceConfig { threshold_quantile: 1.5, ..DeviceConfig::default() }, "threshold_quantile"),
        (DeviceConfig { threshold_margin: 0.5, ..DeviceConfig::default() }, "threshold_margin"),
        (DeviceConfig { hold_rows: 0, ..DeviceConfig::default() }, "hold_rows"),
        (DeviceConfig { stuck_probability: 0.0, ..DeviceConfig::default() }, "stuck_probability"),
    ] {
        match cfg.validate() {
            Err(DeviceError::BadSetting { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected a BadSetting error, got {other:?}"),
        }
    }
    assert!(DeviceModel::new(0, 1000, &DeviceConfig::default()).is_err(), "zero metrics");
    assert!(DeviceModel::new(4, 0, &DeviceConfig::default()).is_err(), "zero interval");
}

#[test]
fn episode_opens_after_the_minimum_duration_and_clears_after_the_hold() {
    let mut e = Episode::new(2, 3, 2);
    let c = [0.0, 1.0];
    assert_eq!(e.step(true, &c), None);
    assert_eq!(e.step(true, &c), None);
    assert_eq!(e.state(), RowState::Pending);
    assert_eq!(e.step(true, &c), Some(Transition::Fired { top: vec![1] }));
    assert_eq!(e.step(false, &c), None, "one normal row is inside the hold");
    assert_eq!(e.state(), RowState::Open);
    assert_eq!(e.step(true, &c), None, "abnormal again: the hold restarts");
    assert_eq!(e.step(false, &c), None);
    assert_eq!(e.step(false, &c), Some(Transition::Cleared { rows: 5 }));
    assert_eq!(e.state(), RowState::Normal);
}

#[test]
fn a_blip_shorter_than_the_minimum_duration_opens_nothing() {
    let mut e = Episode::new(1, 3, 2);
    for _ in 0..100 {
        assert_eq!(e.step(true, &[1.0]), None);
        assert_eq!(e.step(true, &[1.0]), None);
        assert_eq!(e.step(false, &[0.0]), None);
    }
    assert_eq!(e.state(), RowState::Normal);
}

/// Two metrics tied by `b = 2a + 5`, each with its own white noise σ = 0.1, `a` wandering
/// slowly over a wide range.
fn linear_pair(rows: usize, seed: u64) -> Vec<[Option<f64>; 2]> {
    let mut rng = crate::synth::SplitMix64::new(seed);
    let mut a = 0.0;
    (0..rows)
        .map(|i| {
            a = 10.0 * (i as f64 / 500.0).sin();
            [Some(a + 0.1 * rng.normal()), Some(2.0 * a + 5.0 + 0.1 * rng.normal())]
        })
        .collect()
}

#[test]
fn residual_sigma_of_an_exact_linear_relation_is_near_the_noise() {
    let cfg = DeviceConfig { warmup_rows: 3000, ..DeviceConfig::default() };
    let mut m = DeviceModel::new(2, 1000, &cfg).expect("model");
    for row in linear_pair(3000, 7) {
        m.push(&row, false);
    }
    assert!(m.is_live());
    let cal = m.calibration();
    // b predicted from a: error σ = sqrt(0.1² + (2·0.1)²) ≈ 0.224; a from b: sqrt(0.1² + 0.05²) ≈ 0.112.
    assert!(cal[1].0 < 0.3, "{cal:?}");
    assert!(cal[0].0 < 0.15, "{cal:?}");
}
