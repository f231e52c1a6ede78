//! Behaviour of the statistical device detector on small devices whose truth is known by
//! construction (issue 14's test list; the engine-level tests at 1 and 2 workers live in the
//! top-level `tests/`).

use sensorflow_models::device::{DeviceConfig, DeviceModel, Reason, RowState, Transition};
use sensorflow_models::synth::SplitMix64;

const NOISE: f64 = 0.1;

/// Rows of a 3-metric device: `a` cycles over a wide range (period 440 rows, so every part of the warm-up spans it), `b = 2a + 5` and
/// `c = 10 − a`, each reading with white noise σ = 0.1; `shift(i)` is added to `b` on row i.
fn device(rows: usize, seed: u64, shift: impl Fn(usize) -> f64) -> Vec<Vec<Option<f64>>> {
    let mut rng = SplitMix64::new(seed);
    (0..rows)
        .map(|i| {
            let a = 10.0 * (i as f64 / 70.0).sin() + 3.0 * (i as f64 / 17.0).cos();
            vec![
                Some(a + NOISE * rng.normal()),
                Some(2.0 * a + 5.0 + shift(i) + NOISE * rng.normal()),
                Some(10.0 - a + NOISE * rng.normal()),
            ]
        })
        .collect()
}

fn config() -> DeviceConfig {
    DeviceConfig { warmup_rows: 2000, ..DeviceConfig::default() }
}

/// Every transition with its row.
fn transitions(
    model: &mut DeviceModel,
    rows: &[Vec<Option<f64>>],
    exclude: impl Fn(usize) -> bool,
) -> Vec<(usize, Transition)> {
    rows.iter()
        .enumerate()
        .filter_map(|(i, row)| model.push(row, exclude(i)).transition.map(|t| (i, t)))
        .collect()
}

#[test]
fn a_persistent_fault_after_the_warm_up_keeps_one_episode_open_until_it_ends() {
    // b reads 3.0 high (30σ of its noise, about 10σ of its prediction error) on rows 4000..6000.
    let rows = device(9000, 1, |i| if (4000..6000).contains(&i) { 3.0 } else { 0.0 });
    let mut model = DeviceModel::new(3, 1000, &config()).expect("model");
    let t = transitions(&mut model, &rows, |_| false);
    assert_eq!(t.len(), 2, "one fired and one cleared: {t:?}");
    let (fired_at, Transition::Fired { top }) = &t[0] else { panic!("first is not fired: {t:?}") };
    let (cleared_at, Transition::Cleared { .. }) = &t[1] else { panic!("second is not cleared: {t:?}") };
    assert!((4000..4030).contains(fired_at), "fired at row {fired_at}");
    assert!((6000..6100).contains(cleared_at), "cleared at row {cleared_at}");
    assert_eq!(top.first(), Some(&1), "b contributes most: {top:?}");
}

#[test]
fn a_fault_during_the_warm_up_is_not_learned_when_the_labels_exclude_it() {
    // An incident (b 3.0 high) on warm-up rows 300..900, then again on rows 5000..6000.
    let incident = |i: usize| (300..900).contains(&i) || (5000..6000).contains(&i);
    let rows = device(7000, 2, |i| if incident(i) { 3.0 } else { 0.0 });
    let clean = device(7000, 2, |_| 0.0);
    let sigma_b = |rows: &[Vec<Option<f64>>], exclude: bool| {
        let mut m = DeviceModel::new(3, 1000, &config()).expect("model");
        for (i, row) in rows.iter().take(2000).enumerate() {
            m.push(row, exclude && incident(i));
        }
        m.calibration()[1].0
    };
    let (reference, excluded, learned) =
        (sigma_b(&clean, false), sigma_b(&rows, true), sigma_b(&rows, false));
    assert!(excluded < 1.2 * reference, "excluded incident: σ {excluded} against {reference} clean");
    assert!(learned > 2.0 * reference, "the control learns the incident: σ {learned} against {reference}");
    let mut model = DeviceModel::new(3, 1000, &config()).expect("model");
    let t = transitions(&mut model, &rows, |i| i < 2000 && incident(i));
    let fired: Vec<usize> =
        t.iter().filter(|(_, t)| matches!(t, Transition::Fired { .. })).map(|(i, _)| *i).collect();
    assert_eq!(fired.len(), 1, "{t:?}");
    assert!((5000..5030).contains(&fired[0]), "the repeat of the incident fires: {t:?}");
}

#[test]
fn adaptation_follows_a_slow_normal_regime_change_without_alerting() {
    // After the warm-up, b's offset creeps up by 1.0 (10σ of its noise) over 60,000 rows.
    let creep = |i: usize| if i < 2000 { 0.0 } else { 1.0 * ((i - 2000) as f64 / 60_000.0).min(1.0) };
    let rows = device(64_000, 3, creep);
    let adaptive = DeviceConfig { adapt_halflife_rows: 2000, ..config() };
    let mut model = DeviceModel::new(3, 1000, &adaptive).expect("model");
    let t = transitions(&mut model, &rows, |_| false);
    assert!(t.is_empty(), "the adaptive model alerts: {t:?}");
    // Control: the same creep without adaptation is an alert.
    let frozen = DeviceConfig { adapt_below: 0.0, ..adaptive };
    let mut model = DeviceModel::new(3, 1000, &frozen).expect("model");
    assert!(!transitions(&mut model, &rows, |_| false).is_empty(), "without adaptation the creep must alert");
}

#[test]
fn a_device_with_a_missing_metric_still_scores_the_others() {
    // c never reports; b reads 3.0 high on rows 4000..5000.
    let rows: Vec<Vec<Option<f64>>> = device(6000, 4, |i| if (4000..5000).contains(&i) { 3.0 } else { 0.0 })
        .into_iter()
        .map(|mut r| {
            r[2] = None;
            r
        })
        .collect();
    let mut model = DeviceModel::new(3, 1000, &config()).expect("model");
    let mut states = Vec::new();
    let t = transitions(&mut model, &rows, |_| false);
    assert_eq!(t.len(), 2, "{t:?}");
    assert!((4000..4030).contains(&t[0].0), "{t:?}");
    // A metric that stops reporting after the warm-up is a dropout.
    let rows: Vec<Vec<Option<f64>>> = device(3000, 5, |_| 0.0)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            if i >= 2500 {
                r[0] = None;
            }
            r
        })
        .collect();
    let mut model = DeviceModel::new(3, 1000, &config()).expect("model");
    for row in &rows {
        let out = model.push(row, false);
        assert!(out.score.is_finite());
        states.push((out.state, out.reason));
    }
    assert_eq!(states[2499], (RowState::Normal, None));
    assert_eq!(states[2505], (RowState::Open, Some(Reason::Missing)));
}

#[test]
fn a_stuck_metric_opens_an_episode_naming_it() {
    let mut rows = device(4000, 6, |_| 0.0);
    let frozen = rows[3000][2];
    for row in &mut rows[3000..3500] {
        row[2] = frozen;
    }
    let mut model = DeviceModel::new(3, 1000, &config()).expect("model");
    let t = transitions(&mut model, &rows, |_| false);
    let Some((at, Transition::Fired { top })) = t.first() else { panic!("{t:?}") };
    assert!((3000..3010).contains(at), "{t:?}");
    assert_eq!(top.first(), Some(&2), "{t:?}");
}

#[test]
fn new_operating_ground_is_learned_instead_of_alerting_and_a_fault_there_still_fires() {
    // A set-point d the warm-up never saw changes at row 3000 (0 → 1): it moves a's range
    // from ±13 to 30 ± 13, lifts b by 2.0 (20σ of its noise) and c by 5.0 beyond their
    // relations to a, which the regressions, fitted with d = 0, cannot know. A fault (b 3.0
    // high) comes at rows 12000..13000, once the new ground has been learned.
    let mut rng = SplitMix64::new(6);
    let fault = |i: usize| (12_000..13_000).contains(&i);
    let rows: Vec<Vec<Option<f64>>> = (0..14_000)
        .map(|i| {
            let d = if i < 3000 { 0.0 } else { 1.0 };
            let a = 30.0 * d + 10.0 * (i as f64 / 70.0).sin() + 3.0 * (i as f64 / 17.0).cos();
            let shift = if fault(i) { 3.0 } else { 0.0 };
            vec![
                Some(a + NOISE * rng.normal()),
                Some(2.0 * a + 5.0 + 2.0 * d + shift + NOISE * rng.normal()),
                Some(10.0 - a + 5.0 * d + NOISE * rng.normal()),
            ]
        })
        .collect();
    let mut model = DeviceModel::new(3, 1000, &config()).expect("model");
    let t = transitions(&mut model, &rows, |_| false);
    let fired: Vec<usize> =
        t.iter().filter(|(_, t)| matches!(t, Transition::Fired { .. })).map(|(i, _)| *i).collect();
    assert_eq!(fired.len(), 1, "only the fault fires: {t:?}");
    assert!((12_000..12_030).contains(&fired[0]), "the fault on learned ground fires: {t:?}");
    assert!(model.cells() > 1, "the device has several operating cells");
    // Control: without operating cells the move to new ground itself alerts.
    let plain = DeviceConfig { cell_dims: 0, ..config() };
    let mut model = DeviceModel::new(3, 1000, &plain).expect("model");
    let t = transitions(&mut model, &rows, |_| false);
    assert!(
        t.iter().any(|(i, t)| matches!(t, Transition::Fired { .. }) && (3000..12_000).contains(i)),
        "without cells the new ground alerts: {t:?}"
    );
}
